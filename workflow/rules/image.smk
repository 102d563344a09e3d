rule image:
    """Image all calibrated subbands of a target in Stokes I (WSClean)."""
    input:
        calibrated_subbands,
    output:
        image="results/{obs}/image/{obs}-image.fits",
        residual="results/{obs}/image/{obs}-residual.fits",
        model="results/{obs}/image/{obs}-model.fits",
        psf="results/{obs}/image/{obs}-psf.fits",
    log:
        "logs/image/{obs}.log",
    benchmark:
        "benchmarks/image/{obs}.tsv"
    container:
        config["containers"]["wsclean"]
    threads: rule_threads("image")
    resources:
        **rule_resources("image"),
    params:
        settings=config["imaging"],
    script:
        "../scripts/image.py"

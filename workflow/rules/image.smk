rule image:
    """Image all calibrated subbands of a target in Stokes I (WSClean)."""
    input:
        calibrated_subbands,
    output:
        image="results/{obs}/image/{obs}-image.fits",
        residual="results/{obs}/image/{obs}-residual.fits",
        model="results/{obs}/image/{obs}-model.fits",
        psf="results/{obs}/image/{obs}-psf.fits",
    params:
        settings=config["imaging"],
    log:
        "logs/image/{obs}.log",
    benchmark:
        "benchmarks/image/{obs}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    container:
        config["containers"]["wsclean"]
    script:
        "../scripts/image.py"

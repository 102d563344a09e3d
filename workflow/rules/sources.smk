rule find_sources:
    """Source finding (PyBDSF): catalogue as FITS and CSV, and a sky model of the Gaussians."""
    input:
        "results/{obs}/image/{obs}-image.fits",
    output:
        fits="results/{obs}/catalogue/{obs}.srl.fits",
        csv="results/{obs}/catalogue/{obs}.srl.csv",
        skymodel="results/{obs}/catalogue/{obs}.skymodel",
    log:
        "logs/find_sources/{obs}.log",
    benchmark:
        "benchmarks/find_sources/{obs}.tsv"
    container:
        config["containers"]["pybdsf"]
    threads: rule_threads("find_sources")
    resources:
        **rule_resources("find_sources"),
    params:
        settings=config["source_finding"],
    script:
        "../scripts/find_sources.py"

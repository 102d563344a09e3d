rule find_sources:
    """Source finding (PyBDSF): catalogue as FITS and CSV, and a sky model of the Gaussians."""
    input:
        "results/{obs}/image/{obs}-image.fits",
    output:
        fits="results/{obs}/catalogue/{obs}.srl.fits",
        csv="results/{obs}/catalogue/{obs}.srl.csv",
        skymodel="results/{obs}/catalogue/{obs}.skymodel",
    params:
        settings=config["source_finding"],
    log:
        "logs/find_sources/{obs}.log",
    benchmark:
        "benchmarks/find_sources/{obs}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        config["containers"]["pybdsf"]
    script:
        "../scripts/find_sources.py"

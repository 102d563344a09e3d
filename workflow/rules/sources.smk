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


rule correct_fluxes:
    """Fluxes corrected for the station beam, source by source (EveryBeam), when the data were
    calibrated with the beam model (calibration.usebeammodel)."""
    input:
        catalogue="results/{obs}/catalogue/{obs}.srl.csv",
        ms=calibrated_subbands,
    output:
        "results/{obs}/catalogue/{obs}.pbcor.srl.csv",
    log:
        "logs/correct_fluxes/{obs}.log",
    benchmark:
        "benchmarks/correct_fluxes/{obs}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("correct_fluxes")
    resources:
        **rule_resources("correct_fluxes"),
    script:
        "../scripts/correct_fluxes.py"

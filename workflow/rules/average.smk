rule average:
    """Average in frequency and time (DP3 averager); factors from the config."""
    input:
        "work/flagged/{obs}_SB{sb}.MS",
    output:
        scratch("work/averaged/{obs}_SB{sb}.MS"),
    params:
        freqstep=config["averaging"]["freqstep"],
        timestep=config["averaging"]["timestep"],
    log:
        "logs/average/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/average/{obs}_SB{sb}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    container:
        config["containers"]["dp3"]
    script:
        "../scripts/average.py"

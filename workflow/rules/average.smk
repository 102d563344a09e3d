rule average:
    """Average in frequency and time (DP3 averager); factors from the config."""
    input:
        "work/flagged/{obs}_SB{sb}.MS",
    output:
        scratch("work/averaged/{obs}_SB{sb}.MS"),
    log:
        "logs/average/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/average/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["dp3"]
    threads: rule_threads("average")
    resources:
        **rule_resources("average"),
    params:
        freqstep=config["averaging"]["freqstep"],
        timestep=config["averaging"]["timestep"],
    script:
        "../scripts/average.py"

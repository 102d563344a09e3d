rule flag:
    """Preflagger (autocorrelations, configured channels/baselines) and AOFlagger."""
    input:
        "work/raw/{obs}_SB{sb}_uv.MS",
    output:
        scratch("work/flagged/{obs}_SB{sb}.MS"),
    params:
        strategy=strategy_file(),
        preflag=config["flagging"]["preflag"],
    log:
        "logs/flag/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/flag/{obs}_SB{sb}.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        config["containers"]["dp3"]
    script:
        "../scripts/flag.py"

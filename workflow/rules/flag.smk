localrules:
    flagging_strategy,


rule flagging_strategy:
    """The AOFlagger strategy, copied into the run's directory: a job in a container or on a
    worker without a shared file system sees its working directory, not the workflow's.
    (`run:` in the main process: the file is the workflow's, no image is needed to copy it.)
    """
    input:
        strategy_file(),
    output:
        f"work/strategy/{Path(strategy_file()).name}",
    log:
        "logs/flagging_strategy.log",
    run:
        shutil.copyfile(input[0], output[0])
        Path(log[0]).write_text(f"{input[0]} -> {output[0]}\n")


rule flag:
    """Preflagger (autocorrelations, configured channels/baselines) and AOFlagger."""
    input:
        "work/raw/{obs}_SB{sb}_uv.MS",
        strategy=rules.flagging_strategy.output[0],
    output:
        scratch("work/flagged/{obs}_SB{sb}.MS"),
    log:
        "logs/flag/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/flag/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["dp3"]
    threads: rule_threads("flag")
    resources:
        **rule_resources("flag"),
    params:
        preflag=config["flagging"]["preflag"],
    script:
        "../scripts/flag.py"

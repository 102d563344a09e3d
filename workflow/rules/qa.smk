# QA figures; with `truth` set (simulated data) they also score the run against the truth.


rule qa_flags:
    input:
        "work/flagged/{obs}_SB{sb}.MS",
    output:
        plot=report(
            "results/{obs}/qa/{obs}_SB{sb}_flags.png",
            caption="../report/flags.rst",
            category="Flagging",
            labels={"observation": "{obs}", "subband": "{sb}"},
        ),
        table="results/{obs}/qa/{obs}_SB{sb}_flags.tsv",
        scores="results/{obs}/qa/{obs}_SB{sb}_flags.json",
    log:
        "logs/qa_flags/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/qa_flags/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("qa_flags")
    resources:
        **rule_resources("qa_flags"),
    params:
        truth=configured_file("truth"),
    script:
        "../scripts/qa_flags.py"


rule qa_gains:
    input:
        "results/{obs}/calibration/{obs}_SB{sb}.h5",
    output:
        plot=report(
            "results/{obs}/qa/{obs}_SB{sb}_gains.png",
            caption="../report/gains.rst",
            category="Calibration",
            labels={"observation": "{obs}", "subband": "{sb}"},
        ),
        scores="results/{obs}/qa/{obs}_SB{sb}_gains.json",
    log:
        "logs/qa_gains/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/qa_gains/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("qa_gains")
    resources:
        **rule_resources("qa_gains"),
    params:
        truth=configured_file("truth"),
    script:
        "../scripts/qa_gains.py"


rule qa_sources:
    input:
        image="results/{obs}/image/{obs}-image.fits",
        residual="results/{obs}/image/{obs}-residual.fits",
        catalogue=SCORED_CATALOGUE,
    output:
        cutout=report(
            "results/{obs}/qa/{obs}_sources.png",
            caption="../report/sources.rst",
            category="Image",
            labels={"observation": "{obs}", "figure": "cut-out"},
        ),
        flux=report(
            "results/{obs}/qa/{obs}_flux.png",
            caption="../report/flux.rst",
            category="Image",
            labels={"observation": "{obs}", "figure": "flux vs truth"},
        ),
        matches="results/{obs}/qa/{obs}_matches.csv",
        scores="results/{obs}/qa/{obs}_sources.json",
    log:
        "logs/qa_sources/{obs}.log",
    benchmark:
        "benchmarks/qa_sources/{obs}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("qa_sources")
    resources:
        **rule_resources("qa_sources"),
    params:
        truth=configured_file("truth"),
        settings=config["qa"],
    script:
        "../scripts/qa_sources.py"

rule fetch:
    """Unpack one archived subband (`L<obsid>_SB<nnn>_uv.MS.tar`) into a Measurement Set."""
    input:
        raw_archive,
    output:
        scratch("work/raw/{obs}_SB{sb}_uv.MS"),
    log:
        "logs/fetch/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/fetch/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("fetch")
    resources:
        **rule_resources("fetch"),
    script:
        "../scripts/fetch.py"

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
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    container:
        config["containers"]["python"]
    script:
        "../scripts/fetch.py"

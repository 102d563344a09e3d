# The averaged subbands travelling between the runs of a chain split across sites
# (placement.stage, see lofar_datalake.pipeline.placement_config): a preprocess run packs and
# stores them, a process run unpacks them where an `all` run would fetch, flag and average.


if STAGE == "preprocess":

    rule pack_preprocessed:
        """Pack an averaged subband into a deterministic tar (equal data, equal bytes)."""
        input:
            "work/averaged/{obs}_SB{sb}.MS",
        output:
            PACKED,
        log:
            "logs/pack_preprocessed/{obs}_SB{sb}.log",
        benchmark:
            "benchmarks/pack_preprocessed/{obs}_SB{sb}.tsv"
        container:
            config["containers"]["python"]
        threads: rule_threads("pack_preprocessed")
        resources:
            **rule_resources("pack_preprocessed"),
        script:
            "../scripts/pack_preprocessed.py"

    rule store_preprocessed:
        """Keep a packed subband in the DataLake under placement.preprocessed, where the
        process run of the chain reads it (uploaded as store_product uploads products).
        """
        input:
            PACKED,
        output:
            storage.datalake(did(PLACEMENT.archive_name("{obs}", "{sb}"), query=True)),
        log:
            "logs/store_preprocessed/{obs}_SB{sb}.log",
        benchmark:
            "benchmarks/store_preprocessed/{obs}_SB{sb}.tsv"
        container:
            config["containers"]["python"]
        threads: rule_threads("store_product")
        resources:
            **rule_resources("store_product"),
        shell:
            "cp {input:q} {output:q} 2> {log:q}"

    # Should placement.preprocessed be <datalake.products>/preprocessed, store_product could
    # make the same DID.
    ruleorder: store_preprocessed > store_product


if STAGE == "process":

    rule unpack_preprocessed:
        """Unpack an averaged subband a preprocess run stored (the fetch rule's unpacking)."""
        input:
            preprocessed_archive,
        output:
            scratch("work/averaged/{obs}_SB{sb}.MS"),
        log:
            "logs/unpack_preprocessed/{obs}_SB{sb}.log",
        benchmark:
            "benchmarks/unpack_preprocessed/{obs}_SB{sb}.tsv"
        container:
            config["containers"]["python"]
        threads: rule_threads("fetch")
        resources:
            **rule_resources("fetch"),
        script:
            "../scripts/fetch.py"

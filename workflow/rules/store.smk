if config["input_mode"] == "datalake":

    rule store_product:
        """Keep a product in the DataLake: the storage plugin uploads it to the output RSE,
        verifies it, attaches it to the run's dataset, adds the configured replication rules
        and records provenance metadata."""
        input:
            "results/{product}",
        output:
            stored_product("{product}"),
        log:
            "logs/store/{product}.log",
        benchmark:
            "benchmarks/store/{product}.tsv"
        container:
            config["containers"]["python"]
        threads: rule_threads("store_product")
        resources:
            **rule_resources("store_product"),
        shell:
            "cp {input:q} {output:q} 2> {log:q}"

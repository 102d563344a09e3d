# The run's provenance manifest (see lofar_datalake.provenance): what went in, with which
# software and configuration, and what came out. A local rule: it runs in the main Snakemake
# process, which knows the run's storage settings and the provider's journal.


rule provenance:
    input:
        local_products(),
    output:
        MANIFEST,
    log:
        "logs/provenance.log",
    localrule: True
    params:
        dids=lambda wildcards: sorted(manifest_input_dids()),
        local_inputs=lambda wildcards: manifest_local_inputs(),
        product_did=lambda wildcards: product_dids(),
    run:
        from lofar_datalake.provenance.pipeline_run import write_pipeline_manifest

        write_pipeline_manifest(
            workflow,
            config,
            output=output[0],
            log=log[0],
            input_dids=params.dids,
            local_inputs=params.local_inputs,
            products=input,
            product_did=params.product_did,
            started=RUN_STARTED,
        )

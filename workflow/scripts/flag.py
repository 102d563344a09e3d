"""Rule flag: DP3 preflagger + AOFlagger."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.flag(
        Path(sm.input[0]),
        Path(sm.output[0]),
        Path(sm.input.strategy),
        dict(sm.params.preflag),
        sm.threads,
        log,
    )

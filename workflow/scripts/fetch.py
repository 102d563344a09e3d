"""Rule fetch: unpack one archived subband."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.fetch(Path(sm.input[0]), Path(sm.output[0]), log)

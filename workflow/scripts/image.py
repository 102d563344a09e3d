"""Rule image: WSClean of all calibrated subbands of a target."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    outputs = {name: Path(path) for name, path in sm.output.items()}
    stages.image([Path(p) for p in sm.input], outputs, dict(sm.params.settings), sm.threads, log)

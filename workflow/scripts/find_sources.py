"""Rule find_sources: PyBDSF catalogue and sky model."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    outputs = {name: Path(path) for name, path in sm.output.items()}
    stages.source_finding(Path(sm.input[0]), outputs, dict(sm.params.settings), log)

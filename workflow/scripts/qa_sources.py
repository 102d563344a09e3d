"""Rule qa_sources: image cut-out with sources (and flux/position against the truth, if known)."""

from pathlib import Path

from lofar_datalake.pipeline import qa
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]):
    outputs = {name: Path(path) for name, path in sm.output.items()}
    qa.qa_sources(
        Path(sm.input.image),
        Path(sm.input.residual),
        Path(sm.input.catalogue),
        outputs,
        sm.params.truth,
        dict(sm.params.settings),
        sm.wildcards.obs,
    )

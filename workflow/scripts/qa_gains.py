"""Rule qa_gains: gain solutions (and their agreement with the true gains, if known)."""

from pathlib import Path

from lofar_datalake.pipeline import qa
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]):
    qa.qa_gains(
        Path(sm.input[0]),
        Path(sm.output.plot),
        Path(sm.output.scores),
        sm.params.truth,
        f"{sm.wildcards.obs}_SB{sm.wildcards.sb}",
    )

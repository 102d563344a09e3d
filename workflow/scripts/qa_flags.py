"""Rule qa_flags: flag statistics (and scores against the true RFI, if known)."""

from pathlib import Path

from lofar_datalake.pipeline import qa
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]):
    qa.qa_flags(
        Path(sm.input[0]),
        Path(sm.output.plot),
        Path(sm.output.table),
        Path(sm.output.scores),
        sm.params.truth,
        f"{sm.wildcards.obs}_SB{sm.wildcards.sb}",
    )

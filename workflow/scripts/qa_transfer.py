"""Rule qa_transfer: the calibrator's bandpass, clocks and dTEC (against the truth, if known)."""

from pathlib import Path

from lofar_datalake.pipeline import qa_transfer
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]):
    qa_transfer.qa_transfer(
        [Path(p) for p in sm.input],
        Path(sm.output.plot),
        Path(sm.output.scores),
        sm.params.truth,
        sm.wildcards.obs,
    )

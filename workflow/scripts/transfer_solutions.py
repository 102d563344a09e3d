"""Rule transfer_solutions: a calibrator's bandpass, clocks and dTEC for its targets."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.transfer_solutions(
        [Path(p) for p in sm.input], Path(sm.output.h5parm), Path(sm.output.summary), log
    )

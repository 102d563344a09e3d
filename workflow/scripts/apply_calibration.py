"""Rule apply_calibration: DP3 applycal of the calibrator's solutions to a target."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.apply_solutions(
        Path(sm.input.ms), Path(sm.input.h5parm), Path(sm.output[0]), log, sm.params.beam
    )

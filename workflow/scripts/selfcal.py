"""Rule selfcal: one round of the target's phase self-calibration."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.self_calibrate(
        Path(sm.input.ms),
        Path(sm.input.skymodel),
        Path(sm.output.h5parm),
        Path(sm.output.ms),
        dict(sm.params.settings),
        sm.threads,
        log,
    )

"""Rule calibrate: DP3 DDECal of the calibrator against its sky model."""

from pathlib import Path

from lofar_datalake.pipeline import stages
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    stages.calibrate(
        Path(sm.input.ms),
        Path(sm.input.skymodel),
        Path(sm.output[0]),
        dict(sm.params.settings),
        sm.threads,
        log,
    )

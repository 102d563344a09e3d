"""Rule field_skymodel: the survey's sky model of a target field, for its first self-calibration."""

from pathlib import Path

from lofar_datalake.pipeline.jobs import logged
from lofar_datalake.pipeline.survey_model import field_model

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    model = field_model(
        Path(sm.input.survey),
        [Path(p) for p in sm.input.ms],
        float(sm.params.radius_deg),
        bool(sm.params.beam),
        Path(sm.output[0]),
    )
    with log.open("a") as fh:
        fh.write(f"{model.kept} of the survey's {model.listed} sources in the field\n")
        if model.beam_factors:
            factors = ", ".join(f"{f:.3f}" for f in model.beam_factors)
            fh.write(f"beam factors: {factors}\n")

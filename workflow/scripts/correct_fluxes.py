"""Rule correct_fluxes: the catalogue's fluxes divided by each source's station-beam factor."""

from pathlib import Path

from lofar_datalake.pipeline.beam_correction import correct_catalogue
from lofar_datalake.pipeline.jobs import logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]) as log:
    table = correct_catalogue(
        Path(sm.input.catalogue), [Path(p) for p in sm.input.ms], Path(sm.output[0])
    )
    with log.open("a") as fh:
        for row in table:
            fh.write(f"{row['RA']:.5f} {row['DEC']:.5f} beam factor {row['Beam_factor']:.4f}\n")

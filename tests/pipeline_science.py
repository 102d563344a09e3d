"""The science of a pipeline run's products against the simulation's truth, for every test that
runs the LOFAR pipeline end to end (not a test module: pytest would collect test* functions)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lofar_datalake.pipeline import crossmatch
from lofar_datalake.pipeline.catalogue import read_catalogue
from lofar_datalake.pipeline.qa import image_frequency
from lofar_datalake.simulate import truth


def check_science(run: Path, data: Path) -> None:
    """Every simulated target source found by the run at its true position and flux."""
    with open(data / "observations.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    obs = next(r["observation"] for r in rows if r["role"] == "target")
    catalogue = read_catalogue(run / f"results/{obs}/catalogue/{obs}.srl.csv")
    matches = crossmatch.crossmatch(
        truth.read_target_sources(data / "truth"), np.asarray(catalogue["RA"]),
        np.asarray(catalogue["DEC"]), np.asarray(catalogue["Total_flux"]),
        image_frequency(run / f"results/{obs}/image/{obs}-image.fits"), radius_arcsec=10.0,
    )  # fmt: skip
    assert matches, "no simulated sources to match"
    for m in matches:
        assert m.found and m.separation_arcsec <= 2.0 and abs(m.flux_ratio - 1) <= 0.05, m

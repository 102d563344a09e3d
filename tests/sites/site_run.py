"""What the site tests share: the simulated observation's configuration, the products it must
give, the science check against the simulation's truth, and the jobs a batch system must have
run (not a test module: pytest would collect functions named test*)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lofar_datalake.pipeline import crossmatch
from lofar_datalake.pipeline.catalogue import read_catalogue
from lofar_datalake.pipeline.qa import image_frequency
from lofar_datalake.simulate import truth
from lofar_datalake.simulate.observation import SimulationParams

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARAMS = SimulationParams(seed=1, sky_seed=1)
APPTAINER_KEYS = ("software-deployment-method", "apptainer-prefix", "apptainer-args")


def require(programs: tuple[str, ...], why: str) -> None:
    """Skip without root; without the programs skip too, but fail in CI (`CI=true`), where
    scripts/install-system-deps.sh --tests provides them."""
    if os.geteuid() != 0:
        pytest.skip(f"{why} needs root")
    missing = [p for p in programs if not (shutil.which(p) or Path("/usr/sbin", p).exists())]
    if missing:
        msg = f"{why} needs {', '.join(missing)} (scripts/install-system-deps.sh --tests)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def write_config(workdir: Path, images: dict[str, Path] | None = None) -> Path:
    """The pipeline's test configuration (as in tests/workflow/test_pipeline_local.py), with
    the stage images built here if given."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {
        "input_mode": "local",
        "observations": "data/observations.tsv",
        "truth": "data/truth",
    }
    if images:
        config["containers"] = {family: str(path) for family, path in images.items()}
    config["local"]["data_dir"] = "data"
    config["calibration"]["skymodel"] = "data/calibrator.skymodel"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def expected_products(workdir: Path) -> list[Path]:
    """The products of rule `all` for the simulated sheet."""
    rows = (workdir / "data" / "observations.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    products = []
    for row in rows[1:]:
        r = dict(zip(header, row.split("\t"), strict=True))
        obs, sb = r["observation"], r["subband"]
        products.append(f"results/{obs}/qa/{obs}_SB{sb}_flags.png")
        if r["role"] == "calibrator":
            products += [
                f"results/{obs}/qa/{obs}_SB{sb}_gains.png",
                f"results/{obs}/calibration/{obs}_SB{sb}.h5",
            ]
    obs = f"L{PARAMS.target_obsid}"
    products += [
        f"results/{obs}/image/{obs}-image.fits",
        f"results/{obs}/catalogue/{obs}.srl.fits",
        f"results/{obs}/catalogue/{obs}.srl.csv",
        f"results/{obs}/catalogue/{obs}.skymodel",
        f"results/{obs}/qa/{obs}_sources.png",
        f"results/{obs}/qa/{obs}_flux.png",
    ]
    return [workdir / p for p in products]


def check_products_and_sources(workdir: Path) -> None:
    """Every product is there, and the catalogue finds the simulated sources (a light version
    of the local workflow test's check)."""
    for product in expected_products(workdir):
        assert product.is_file() and product.stat().st_size > 0, product
    obs = f"L{PARAMS.target_obsid}"
    cat = read_catalogue(workdir / f"results/{obs}/catalogue/{obs}.srl.csv")
    matches = crossmatch.crossmatch(
        truth.read_target_sources(workdir / "data" / "truth"),
        np.asarray(cat["RA"]), np.asarray(cat["DEC"]), np.asarray(cat["Total_flux"]),
        image_frequency(workdir / f"results/{obs}/image/{obs}-image.fits"), radius_arcsec=10.0,
    )  # fmt: skip
    for m in matches:
        assert m.found and m.separation_arcsec <= 2.0 and abs(m.flux_ratio - 1) <= 0.05, m


def submitted_jobs(log: str, submitted_pattern: str) -> list[str]:
    """The batch job ids Snakemake's log reports, checked to be one per job of the run that
    Snakemake did not run itself (local rules never reach the batch system)."""
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    assert steps, log[-3000:]
    total = int(steps[-1][1])
    local = len(re.findall(r"^localrule \w+:", log, flags=re.MULTILINE))
    submitted = re.findall(submitted_pattern, log)
    assert len(submitted) == total - local > 0, (total, local, submitted)
    return submitted

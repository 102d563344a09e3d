"""The same observation processed from the DataLake and from a local copy gives the same answer.

DataLake mode runs as the embedded default site does (`--profile profiles/local`): the archives
sit on SITE_B and SITE_C, are staged to SITE_A by Rucio rules (conveyor + FTS), and the products
are stored back with a rule for a second copy on SITE_B. Needs the session's local DataLake.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from lofar_datalake.datalake.rucio_adapter import Did
from lofar_datalake.pipeline.catalogue import read_catalogue
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake.testbed.seed import seed

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PARAMS = SimulationParams(seed=3, sky_seed=3, calibrator_obsid=710000, target_obsid=710001)


def _config(workdir: Path, data: Path, mode: str, products: str) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {
        "input_mode": mode,
        "observations": str(data / "observations.tsv"),
        "truth": str(data / "truth"),
    }
    config["local"]["data_dir"] = str(data)
    config["calibration"]["skymodel"] = str(data / "calibrator.skymodel")
    config["datalake"]["products"] = products
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run(workdir: Path, config: Path, *extra: str) -> str:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def both_modes(testbed_session, tmp_path_factory):
    testbed = testbed_session
    testbed.up()
    root = tmp_path_factory.mktemp("dl-vs-local")
    data = root / "data"
    simulate(PARAMS, data)
    placed = seed(testbed, data, rses=("SITE_B_DISK", "SITE_C_DAV"))
    products = f"products/test-{time.time_ns()}"

    local = root / "local"
    _run(local, _config(local, data, "local", products), "--cores", "2")
    datalake = root / "datalake"
    log = _run(
        datalake, _config(datalake, data, "datalake", products),
        "--profile", str(REPO / "profiles" / "local"),
        "--storage-datalake-rucio-config", str(testbed.layout.client_config),
        "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
    )  # fmt: skip
    yield {
        "local": local,
        "datalake": datalake,
        "placed": placed,
        "products": products,
        "log": log,
        "testbed": testbed,
    }
    for workdir in (local, datalake):
        shutil.rmtree(workdir / "work", ignore_errors=True)


def test_image_pixels_agree(both_modes):
    obs = f"L{PARAMS.target_obsid}"
    images = []
    for mode in ("local", "datalake"):
        with fits.open(both_modes[mode] / f"results/{obs}/image/{obs}-image.fits") as hdul:
            images.append(np.asarray(hdul[0].data, dtype=np.float64))
    local, datalake = images
    assert local.shape == datalake.shape
    peak = float(np.nanmax(np.abs(local)))
    assert peak > 0
    np.testing.assert_allclose(datalake, local, rtol=0, atol=1e-5 * peak)


def test_catalogues_agree(both_modes):
    obs = f"L{PARAMS.target_obsid}"
    cats = [
        read_catalogue(both_modes[m] / f"results/{obs}/catalogue/{obs}.srl.csv")
        for m in ("local", "datalake")
    ]
    local, datalake = cats
    assert len(local) == len(datalake) == PARAMS.n_sources
    order_l = np.lexsort((np.asarray(local["DEC"]), np.asarray(local["RA"])))
    order_d = np.lexsort((np.asarray(datalake["DEC"]), np.asarray(datalake["RA"])))
    for column, tolerance in (("RA", 1e-6), ("DEC", 1e-6)):  # degrees: < 0.004 arcsec
        np.testing.assert_allclose(
            np.asarray(datalake[column])[order_d],
            np.asarray(local[column])[order_l],
            rtol=0,
            atol=tolerance,
        )
    np.testing.assert_allclose(
        np.asarray(datalake["Total_flux"])[order_d],
        np.asarray(local["Total_flux"])[order_l],
        rtol=1e-4,
    )


def test_inputs_were_staged_to_the_site_by_rules(both_modes, rucio):
    dids = [did for did, _ in both_modes["placed"]]
    for replica in rucio.list_replicas(dids):
        assert replica["states"].get("SITE_A_DISK") == "AVAILABLE", replica["states"]
    for did in dids:
        rules = rucio.list_did_rules(did)
        assert any(r["rse_expression"] == "SITE_A_DISK" and r["expires_at"] for r in rules)
    assert "staging them by rule" in both_modes["log"]


def test_products_are_stored_back_with_a_second_copy(both_modes, rucio):
    obs = f"L{PARAMS.target_obsid}"
    prefix = both_modes["products"]
    names = set(rucio.list_files("lofar", f"{prefix}/*"))
    for expected in (
        f"{obs}/image/{obs}-image.fits",
        f"{obs}/catalogue/{obs}.srl.fits",
        f"L{PARAMS.calibrator_obsid}/calibration/L{PARAMS.calibrator_obsid}_SB000.h5",
    ):
        assert f"{prefix}/{expected}" in names
    catalogue = Did("lofar", f"{prefix}/{obs}/catalogue/{obs}.srl.fits")
    [replica] = rucio.list_replicas([catalogue])
    assert replica["states"].get("SITE_A_DISK") == "AVAILABLE"
    assert any(r["rse_expression"] == "SITE_B_DISK" for r in rucio.list_did_rules(catalogue))
    local_bytes = (
        (both_modes["datalake"] / f"results/{obs}/catalogue/{obs}.srl.fits").stat().st_size
    )
    assert replica["bytes"] == local_bytes

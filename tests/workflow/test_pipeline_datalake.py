"""The same observation processed from the DataLake and from a local copy gives the same answer:
`lofar-datalake compare` on a simulated observation, its provenance manifest, and the run
reproduced at another site from the manifest alone.

DataLake mode runs as the embedded default site does (`--profile profiles/local`): the archives
sit on SITE_B and SITE_C, are staged to SITE_A by Rucio rules (conveyor + FTS), and the products
are stored back with a rule for a second copy on SITE_B. Needs the session's local DataLake.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did
from lofar_datalake.simulate.observation import SimulationParams, simulate
from lofar_datalake_testbed.demo import pipeline as demo_pipeline
from lofar_datalake_testbed.rucio_config import credentials
from lofar_datalake_testbed.seed import seed

pytestmark = [pytest.mark.workflow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("lofar-datalake"))
PARAMS = SimulationParams(seed=3, sky_seed=3, calibrator_obsid=710000, target_obsid=710001)
TARGET, CALIBRATOR = f"L{PARAMS.target_obsid}", f"L{PARAMS.calibrator_obsid}"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def compared(testbed_session, tmp_path_factory):
    bed = testbed_session
    bed.up()
    root = tmp_path_factory.mktemp("compare-pipeline")
    data = root / "data"
    simulate(PARAMS, data)
    placed = seed(bed, data, rses=("SITE_B_DISK", "SITE_C_DAV"))
    products = f"products/test-{time.time_ns()}"
    env = {**os.environ, "X509_USER_PROXY": str(bed.pki.proxy),
           "RUCIO_CONFIG": str(bed.layout.client_config),
           # A secret the run is given and uses, but must never write anywhere (the FTS service
           # takes no tokens: the account's own password is planted).
           "SNAKEMAKE_STORAGE_DATALAKE_PASSWORD": credentials(bed.layout).lofar_password}
    args = demo_pipeline.testbed_args(bed)
    out = root / "compare"
    done = _cli("compare", "--out", str(out), "--profile", str(REPO / "profiles" / "local"),
                "--", "-s", str(REPO / "Snakefile"), "--configfile",
                str(demo_pipeline.write_demo_config(root, data, products)), *args, env=env)
    yield {"root": root, "out": out, "done": done, "placed": placed, "products": products,
           "env": env, "args": args, "planted": env["SNAKEMAKE_STORAGE_DATALAKE_PASSWORD"]}
    for run in ("datalake", "local"):
        shutil.rmtree(out / run / "work", ignore_errors=True)


def _verdict(out: Path) -> dict:
    return json.loads((out / "verdict.json").read_text())


def test_compare_says_equivalent_with_evidence(compared):
    done = compared["done"]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    verdict = _verdict(compared["out"])
    assert verdict["equivalent"] is True
    methods = {p["path"]: p["method"] for p in verdict["products"]}
    assert methods[f"{TARGET}/image/{TARGET}-image.fits"] == "fits-image"
    assert methods[f"{TARGET}/catalogue/{TARGET}.srl.fits"] == "catalogue"
    assert methods[f"{CALIBRATOR}/calibration/{CALIBRATOR}_SB000.h5"] == "h5parm"
    datalake, local = verdict["runs"]["datalake"], verdict["runs"]["local"]
    for stage in ("flag", "calibrate", "image", "find_sources"):
        assert datalake["stages"][stage]["jobs"] >= 1 and local["stages"][stage]["jobs"] >= 1
    archives = sum((compared["root"] / "data" / f"{obs}_SB000_uv.MS.tar").stat().st_size
                   for obs in (TARGET, CALIBRATOR))
    # Both archives were moved to SITE_A by the rule's transfers, as Rucio recorded them.
    assert datalake["staging"]["bytes"] == archives
    assert "Rucio request history (2/2" in datalake["staging"]["bytes_source"]
    assert datalake["requests"]["fts_jobs"] >= 1 and datalake["requests"]["rucio_rules"] == 2
    assert local["requests"]["rucio"] == 0 and local["copy"]["bytes"] == archives
    report = (compared["out"] / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4


def test_inputs_were_staged_to_the_site_by_rules(compared, rucio):
    dids = [did for did, _ in compared["placed"]]
    for replica in rucio.list_replicas(dids):
        assert replica["states"].get("SITE_A_DISK") == "AVAILABLE", replica["states"]
    for did in dids:
        rules = rucio.list_did_rules(did)
        assert any(r["rse_expression"] == "SITE_A_DISK" and r["expires_at"] for r in rules)
    assert "staging them by rule" in (compared["out"] / "datalake" / "snakemake.log").read_text()


def test_products_and_manifest_are_stored_back_with_a_second_copy(compared, rucio):
    prefix = compared["products"]
    names = set(rucio.list_files("lofar", f"{prefix}/*"))
    for expected in (f"{TARGET}/image/{TARGET}-image.fits", "provenance.json",
                     f"{CALIBRATOR}/calibration/{CALIBRATOR}_SB000.h5"):
        assert f"{prefix}/{expected}" in names
    catalogue = Did("lofar", f"{prefix}/{TARGET}/catalogue/{TARGET}.srl.fits")
    [replica] = rucio.list_replicas([catalogue])
    assert replica["states"].get("SITE_A_DISK") == "AVAILABLE"
    assert any(r["rse_expression"] == "SITE_B_DISK" for r in rucio.list_did_rules(catalogue))
    local = compared["out"] / "datalake" / f"results/{TARGET}/catalogue/{TARGET}.srl.fits"
    assert replica["bytes"] == local.stat().st_size


def test_manifest_records_inputs_software_and_outputs_without_secrets(compared, rucio):
    manifest = json.loads((compared["out"] / "datalake/results/provenance.json").read_text())
    inputs = {i["did"]: i for i in manifest["inputs"]}
    assert set(inputs) == {str(did) for did, _ in compared["placed"]}
    for meta in rucio.get_metadata_bulk([did for did, _ in compared["placed"]]):
        entry = inputs[f"{meta['scope']}:{meta['name']}"]
        assert entry["adler32"] == meta["adler32"] and entry["bytes"] == meta["bytes"]
        assert entry["replica"]["rse"] == "SITE_A_DISK"  # staged there, then linked
    versions = manifest["software"]["versions"]
    assert versions["DP3"] == "6.6.0" and versions["WSClean"] == "3.1.0"
    assert versions["bdsf"] and versions["python-casacore"] and versions["snakemake"]
    assert "libaoflagger" in versions["AOFlagger"]
    assert set(manifest["software"]["containers"]) == {"python", "dp3", "wsclean", "pybdsf"}
    assert manifest["run"]["storage"]["stage_policy"] == "rule"
    assert manifest["run"]["storage"]["site_rse"] == "SITE_A_DISK"
    outputs = {o["path"]: o for o in manifest["outputs"]}
    image = outputs[f"results/{TARGET}/image/{TARGET}-image.fits"]
    assert image["did"] == f"lofar:{compared['products']}/{TARGET}/image/{TARGET}-image.fits"
    assert manifest["config"]["datalake"]["products"] == compared["products"]
    assert "observations" in manifest["embedded"] and "truth" in manifest["embedded"]
    # The planted password reaches no artefact of the comparison.
    for path in compared["out"].rglob("*"):
        if path.is_file() and ".part" not in path.name and path.stat().st_size < 50 * 2**20:
            assert compared["planted"].encode() not in path.read_bytes(), path


def _flip_samples(archive: Path) -> None:
    """Flip the sign of every third visibility row of a subband's Measurement Set."""
    from casacore.tables import table

    work = archive.with_suffix(".unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="tar")
    [ms] = list(work.glob("*.MS"))
    with table(str(ms), readonly=False, ack=False) as t:
        data = t.getcol("DATA")
        data[::3] *= -1
        t.putcol("DATA", data)
    with tarfile.open(archive, "w") as tar:
        tar.add(ms, arcname=ms.name)
    shutil.rmtree(work)


def test_a_corrupted_subband_in_the_local_copy_is_found(compared):
    assert compared["done"].returncode == 0
    copy = compared["root"] / "flipped-copy"
    shutil.copytree(compared["out"] / "local-copy", copy)
    name = f"{TARGET}_SB000_uv.MS.tar"
    _flip_samples(copy / "lofar" / name)
    index = json.loads((copy / "index.json").read_text())
    data = (copy / "lofar" / name).read_bytes()
    index[f"lofar:{name}"] |= {"bytes": len(data), "md5": None,
                               "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"}
    (copy / "index.json").write_text(json.dumps(index))
    out = compared["root"] / "compare-flipped"
    done = _cli("compare", "--out", str(out), "--profile", str(REPO / "profiles" / "local"),
                "--datalake-workdir", str(compared["out"] / "datalake"), "--local-copy",
                str(copy), "--", "-s", str(REPO / "Snakefile"), "--configfile",
                str(compared["root"] / "config.yaml"), *compared["args"], env=compared["env"])
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    verdict = _verdict(out)
    differing = {p["path"] for p in verdict["products"] if not p["equivalent"]}
    assert f"{TARGET}/image/{TARGET}-image.fits" in differing
    assert f"{TARGET}/catalogue/{TARGET}.srl.fits" in differing
    # The calibrator's subband was not touched: its solutions still agree.
    assert f"{CALIBRATOR}/calibration/{CALIBRATOR}_SB000.h5" not in differing
    shutil.rmtree(out / "local" / "work", ignore_errors=True)


def test_reproduce_at_site_b_from_the_stored_manifest(compared):
    assert compared["done"].returncode == 0
    out = compared["root"] / "reproduce"
    manifest_did = f"lofar:{compared['products']}/provenance.json"
    done = _cli("reproduce", manifest_did, "--out", str(out),
                "--profile", str(REPO / "profiles" / "local-site-b"), "--",
                *compared["args"], env=compared["env"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    verdict = _verdict(out)
    assert verdict["equivalent"] is True and len(verdict["products"]) >= 10
    events = read_events(out / "run")
    used = {e["did"]: e for e in events if e["event"] == "input"}
    assert {e["rse"] for e in used.values()} == {"SITE_B_DISK"}
    assert any(e["event"] == "site_transfer" and e["policy"] == "fts" for e in events)
    manifest = json.loads((out / "run/results/provenance.json").read_text())
    assert manifest["run"]["storage"]["site_rse"] == "SITE_B_DISK"
    assert "/reproduced-" in manifest["config"]["datalake"]["products"]
    shutil.rmtree(out / "run" / "work", ignore_errors=True)

"""Transfer faults injected into the real DataLake: FTS copies to the site that fail and then
work (or never do), a transfer that hangs, and an output upload to storage that is down.

The faults are real: the destination's directory is a file (FTS really fails to write there),
the WebDAV server is stopped or frozen. Nothing of Rucio or FTS is mocked.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fts3.rest.client.easy as fts3
import pytest
from fts_support import fts_context_for, grid_ca_dir, wait_for

from datalake_core.journal import Journal, read_events
from datalake_core.resolver import Resolver
from datalake_core.rucio_adapter import Did, RucioAdapter
from datalake_core.settings import ProviderConfig, StagePolicy
from datalake_core.site_transfer import DEFAULT_FTS_ATTEMPTS, DEFAULT_FTS_BACKOFF
from datalake_core.staging import Stager

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SITE = "SITE_A_DISK"


def _pfn(rucio: RucioAdapter, did: Did, rse: str) -> Path:
    """Where the replica of `did` on `rse` is on disk (every testbed RSE has a file protocol)."""
    from rucio.rse import rsemanager

    pfns = rsemanager.lfns2pfns(rucio.rse_info(rse), [did.as_dict()], operation="write",
                                scheme="file")
    return Path(pfns[str(did)].removeprefix("file://"))


@pytest.fixture()
def block_dir(rucio: RucioAdapter) -> Iterator[Callable[[Did, str], Path]]:
    """Make the directory that would hold `did` on `rse` a plain file: every write there fails
    with "Not a directory", over any protocol. Undone after the test."""
    made: list[Path] = []

    def block(did: Did, rse: str) -> Path:
        blocker = _pfn(rucio, did, rse).parent
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"not a directory")
        made.append(blocker)
        return blocker

    yield block
    for blocker in made:
        if blocker.is_file():
            blocker.unlink()


@pytest.fixture()
def fts_env(testbed, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`client_env` plus the testbed CA as the grid trust directory (X509_CERT_DIR): the `fts3`
    client can verify the FTS service while the provider's own https reads still cannot."""
    ca_dir = grid_ca_dir(testbed.pki.ca_cert, tmp_path_factory.mktemp("certificates"))
    monkeypatch.setenv("X509_CERT_DIR", str(ca_dir))
    return {**client_env, "X509_CERT_DIR": str(ca_dir)}


def _args(testbed, unique: str, *extra: str, ca: bool = False) -> list[str]:
    # Without the CA bundle the provider cannot read the https replica itself: FTS is the only
    # way the file can reach this machine, so a run that succeeds proves FTS copied it.
    args = ["--storage-datalake-rucio-config", str(testbed.layout.client_config),
            "--storage-datalake-site-rse", SITE, "--storage-datalake-stage-policy", "fts",
            *extra, "--config", f"prefix={unique}", "count=1"]
    if ca:
        args += ["--storage-datalake-ca-bundle", str(testbed.pki.ca_cert)]
    return args


def _snakemake(workdir: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(workdir), "--cores", "2",
                             *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def _events(workdir: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(workdir) if e["event"] == kind]




def _fts_jobs(testbed, job_ids: list[str]) -> list[dict[str, Any]]:
    context = fts_context_for(testbed)
    return [fts3.get_job_status(context, j, list_files=True) for j in job_ids]


@pytest.mark.timeout(300)
def test_fts_copy_failing_twice_is_retried_with_backoff_and_succeeds(
        testbed, rucio, seed, unique, block_dir, fts_env, tmp_path):
    [f] = seed([f"{unique}/SB000.dat"], "SITE_C_DAV")
    blocker = block_dir(f.did, SITE)
    proc = _snakemake(tmp_path, _args(testbed, unique), fts_env)
    try:
        # The fault is repaired during the backoff after the second failed attempt.
        wait_for(lambda: any(e["attempt"] == 2 for e in _events(tmp_path, "fts_retry")),
                 timeout=120, what="a second failed FTS attempt", interval=0.2)
        blocker.unlink()
    finally:
        code, err = _finish(proc)
    assert code == 0, err[-4000:]

    retries = _events(tmp_path, "fts_retry")
    assert [(e["attempt"], e["delay"]) for e in retries] == [
        (1, DEFAULT_FTS_BACKOFF), (2, 2 * DEFAULT_FTS_BACKOFF)]
    for event in retries:
        [reason] = event["failed"][str(f.did)]
        assert "Not a directory" in reason and str(blocker) in reason
    [staged] = _events(tmp_path, "site_transfer")
    assert staged["attempts"] == {str(f.did): 3} and staged["failed"] == {}
    states = [j["job_state"] for j in _fts_jobs(testbed, staged["fts_jobs"])]
    assert states == ["FAILED", "FAILED", "FINISHED"]
    # The copy FTS made is a registered replica at the site, and the job read it there.
    [replica] = rucio.list_replicas([f.did])
    assert replica["states"].get(SITE) == "AVAILABLE"
    assert _pfn(rucio, f.did, SITE).read_bytes() == f.data
    assert f"{f.did} via symlink from {SITE}" in err
    expected = f"SB000 {len(f.data)} {zlib.adler32(f.data) & 0xFFFFFFFF:08x}\n"
    assert (tmp_path / "summary.txt").read_text() == expected


@pytest.mark.timeout(300)
def test_fts_copy_that_never_succeeds_fails_after_the_configured_attempts(
        testbed, rucio, seed, unique, block_dir, fts_env, tmp_path):
    [f] = seed([f"{unique}/SB000.dat"], "SITE_C_DAV")
    blocker = block_dir(f.did, SITE)
    code, err = _finish(_snakemake(tmp_path, _args(testbed, unique), fts_env))
    assert code != 0

    # The run's error names the DID, the source, the destination and FTS's reason.
    error = err[err.index("Failed to retrieve input from storage"):]
    [message] = [line for line in error.splitlines() if "no usable replica" in line]
    assert message.strip().startswith(f"{f.did}: ")
    assert f"did not copy it to {SITE} in {DEFAULT_FTS_ATTEMPTS} attempts" in message
    source = next(p for p in rucio.list_replicas([f.did])[0]["pfns"] if p.startswith("https"))
    assert f"{source} -> file://{blocker}/SB000.dat: DESTINATION [20] " in message
    assert "Not a directory" in message

    [staged] = _events(tmp_path, "site_transfer")
    assert staged["attempts"] == {str(f.did): DEFAULT_FTS_ATTEMPTS}
    assert "Not a directory" in staged["failed"][str(f.did)]
    jobs = _fts_jobs(testbed, staged["fts_jobs"])
    assert [j["job_state"] for j in jobs] == ["FAILED"] * DEFAULT_FTS_ATTEMPTS
    assert all(j["files"][0]["retry"] == 0 for j in jobs), "no FTS-side retries on top"
    delays = [e["delay"] for e in _events(tmp_path, "fts_retry")]
    assert delays == [DEFAULT_FTS_BACKOFF * 2**i for i in range(DEFAULT_FTS_ATTEMPTS - 1)]
    assert rucio.list_replicas([f.did])[0]["states"].get(SITE) is None, "nothing registered"


@pytest.mark.timeout(180)
def test_fts_copy_that_hangs_is_canceled_at_the_stage_timeout(testbed, rucio, seed, unique,
                                                              fts_env, tmp_path):
    """The source storage freezes mid-transfer (SIGSTOP): the FTS job would never end. Staging
    gives up at the stage timeout, cancels the job at FTS and says why; no replica is made.
    Driven in process, below Snakemake, so that nothing else waits on the frozen server."""
    [f] = seed([f"{unique}/SB000.dat"], "SITE_C_DAV")
    timeout = 5
    cfg = ProviderConfig(site_rse=SITE, stage_policy=StagePolicy.FTS, stage_timeout=timeout)
    resolver = Resolver(lambda: rucio)
    stager = Stager(cfg, resolver, lambda: rucio, logging.getLogger("test"),
                    journal=Journal("hang", tmp_path / "journal"))
    info = resolver.get(f.did)
    assert info is not None
    [dav] = [p for p in testbed.services() if p.name == "webdav-SITE_C_DAV"]
    frozen = dav.process()
    assert frozen is not None
    frozen.suspend()
    try:
        result = stager.site.by_fts([info])
    finally:
        frozen.resume()
        stager.close()
    why = result[f.did]
    assert why is not None
    assert f"not finished after {timeout} s" in why and "job canceled" in why
    assert f"in 1 attempt (stage timeout of {timeout} s reached)" in why
    events = (tmp_path / "journal" / "journal-hang.jsonl").read_text().splitlines()
    [staged] = [e for e in map(json.loads, events) if e["event"] == "site_transfer"]
    assert staged["attempts"] == {str(f.did): 1}
    [job] = _fts_jobs(testbed, staged["fts_jobs"])
    assert job["job_state"] == "CANCELED"
    resolver.refresh([f.did])
    assert SITE not in {r.rse for r in resolver.get(f.did).available_replicas()}


@pytest.fixture()
def stop_component(testbed) -> Iterator[Callable[[str], None]]:
    """Stop one testbed process; `testbed.up()` (here at the end at the latest) restarts it."""
    def stop(name: str) -> None:
        [proc] = [p for p in testbed.services() if p.name == name]
        proc.stop()

    yield stop
    testbed.up()


@pytest.mark.parametrize("fault", ["webdav-stopped", "directory-blocked"])
@pytest.mark.timeout(300)
def test_failed_output_upload_registers_nothing_keeps_the_product_and_reruns(
        fault, testbed, rucio, seed, unique, block_dir, stop_component, datalake_args,
        run_snakemake, client_env, tmp_path):
    rse = "SITE_C_DAV"
    seed([f"{unique}/SB{i:03d}.dat" for i in range(2)], "SITE_B_DISK")
    out = Did("lofar", f"{unique}/out/summary.txt")
    args = [*datalake_args, "--storage-datalake-output-rse", rse,
            "--storage-datalake-output-dataset", f"lofar:{unique}/run",
            "--config", f"prefix={unique}", "count=2", f"out={unique}/out"]
    if fault == "webdav-stopped":
        stop_component(f"webdav-{rse}")  # the output RSE is down
    else:
        blocker = block_dir(out, rse)  # its storage refuses this file, over any protocol

    failed = run_snakemake(tmp_path, SNAKEFILE, args, client_env)
    assert failed.returncode != 0
    assert f"Failed to store output in storage datalake://lofar/{out.name}" in failed.stderr
    kept = tmp_path / ".snakemake" / "datalake" / "unstored" / out.scope / out.name
    assert f"{out} not stored: upload of " in failed.stderr
    assert f"Nothing was registered in Rucio; the product is kept at {kept}" in failed.stderr
    # No DID, so no replica without bytes; the product survives Snakemake's cleanup.
    assert rucio.get_metadata(out) is None
    assert rucio.list_replicas([out]) == []
    assert kept.read_bytes() == (tmp_path / "summary.txt").read_bytes()
    [event] = _events(tmp_path, "output_failed")
    assert event["did"] == str(out) and event["kept"] == str(kept)

    if fault == "webdav-stopped":
        testbed.up()
    else:
        blocker.unlink()
    again = run_snakemake(tmp_path, SNAKEFILE, args, client_env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"{out} uploaded to {rse}" in again.stderr
    [replica] = rucio.list_replicas([out])
    assert replica["states"] == {rse: "AVAILABLE"}
    assert _pfn(rucio, out, rse).read_bytes() == (tmp_path / "summary.txt").read_bytes()
    assert not kept.exists(), "the kept copy goes once the same bytes are stored"

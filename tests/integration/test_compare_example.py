"""`lofar-datalake compare` on a small non-LOFAR workflow (tests/workflow/example): any workflow
whose inputs are `storage.datalake(...)` can be verified on DataLake data against a local copy.
Runs against the session's local DataLake."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tests" / "workflow" / "example" / "Snakefile"
CLI = str(Path(sys.executable).with_name("lofar-datalake"))
STATIONS = ("ams", "dwl", "exl")


def _series(station: str) -> bytes:
    rng = random.Random(station)
    lines = ["time,celsius"]
    for hour in range(72):
        day, hh = divmod(hour, 24)
        lines.append(f"2026-01-{day + 1:02d}T{hh:02d}:00,{rng.gauss(4.0, 3.0):.2f}")
    return ("\n".join(lines) + "\n").encode()


def _compare(out: Path, env: dict[str, str], datalake_args: list[str], prefix: str,
             *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "compare", "--out", str(out), *options, "--",
         "-s", str(EXAMPLE), "--cores", "2",
         "--config", f"prefix={prefix}", f"stations={','.join(STATIONS)}",
         "--storage-datalake-stage-policy", "download", *datalake_args],
        env=env, capture_output=True, text=True, timeout=300, cwd=out.parent,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compared(testbed_session, tmp_path_factory):
    """The example's inputs on two RSEs, and one comparison run on them."""
    from datalake_core.rucio_adapter import RucioAdapter

    bed = testbed_session
    bed.up()
    env_vars = {"RUCIO_CONFIG": str(bed.layout.client_config),
                "X509_USER_PROXY": str(bed.pki.proxy)}
    mp = pytest.MonkeyPatch()
    for key, value in env_vars.items():
        mp.setenv(key, value)
    rucio = RucioAdapter()
    root = tmp_path_factory.mktemp("compare-example")
    prefix = f"tests/compare-{time.time_ns()}"
    for i, station in enumerate(STATIONS):
        path = root / "upload" / f"{station}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_series(station))
        rucio.upload(path, Did("lofar", f"{prefix}/{station}.csv"),
                     ("SITE_B_DISK", "SITE_C_DAV")[i % 2])
    import os

    env = {**os.environ, **env_vars}
    args = ["--storage-datalake-rucio-config", str(bed.layout.client_config),
            "--storage-datalake-ca-bundle", str(bed.pki.ca_cert)]
    out = root / "first"
    done = _compare(out, env, args, prefix)
    yield {"root": root, "out": out, "done": done, "env": env, "args": args, "prefix": prefix}
    mp.undo()


def _verdict(out: Path) -> dict:
    return json.loads((out / "verdict.json").read_text())


def test_datalake_and_local_copy_runs_are_equivalent(compared):
    done, out = compared["done"], compared["out"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "==> EQUIVALENT: 4/4 products agree" in done.stdout
    verdict = _verdict(out)
    assert verdict["equivalent"] is True
    paths = sorted(p["path"] for p in verdict["products"])
    assert paths == sorted([f"daily/{s}.json" for s in STATIONS] + ["summary.json"])
    datalake, local = verdict["runs"]["datalake"], verdict["runs"]["local"]
    sizes = sum(len(_series(s)) for s in STATIONS)
    assert datalake["staging"]["files"] == len(STATIONS)
    assert datalake["staging"]["bytes"] == sizes  # read directly (policy download)
    assert datalake["requests"]["rucio"] > 0
    assert local["requests"]["rucio"] == 0  # the local-copy run never contacts Rucio
    assert local["copy"]["files"] == len(STATIONS) and local["copy"]["bytes"] == sizes
    assert datalake["stages"]["daily"]["jobs"] == len(STATIONS)
    assert local["stages"]["summary"]["jobs"] == 1
    index = json.loads((out / "local-copy" / "index.json").read_text())
    for station in STATIONS:
        entry = index[f"lofar:{compared['prefix']}/{station}.csv"]
        assert entry["adler32"] == f"{zlib.adler32(_series(station)) & 0xFFFFFFFF:08x}"
    report = (out / "report.html").read_text()
    assert "EQUIVALENT" in report and "data:image/png;base64," in report


def test_a_different_local_copy_is_not_equivalent_and_named(compared):
    """A local copy with one station's data changed (and its index rewritten to match, as a
    genuinely different copy would be): the products derived from it differ, the others not."""
    out, root = compared["out"], compared["root"]
    copy = root / "changed-copy"
    shutil.copytree(out / "local-copy", copy)
    name = f"lofar:{compared['prefix']}/dwl.csv"
    path = copy / "lofar" / f"{compared['prefix']}/dwl.csv"
    data = path.read_bytes().replace(b"T05:00,", b"T05:00,1", 1)
    path.write_bytes(data)
    index = json.loads((copy / "index.json").read_text())
    index[name] = {**index[name], "bytes": len(data),
                   "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"}
    (copy / "index.json").write_text(json.dumps(index))

    second = root / "second"
    done = _compare(second, compared["env"], compared["args"], compared["prefix"],
                    "--datalake-workdir", str(out / "datalake"), "--local-copy", str(copy))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    verdict = _verdict(second)
    differing = sorted(p["path"] for p in verdict["products"] if not p["equivalent"])
    assert differing == ["daily/dwl.json", "summary.json"]
    assert "NOT EQUIVALENT" in done.stdout and "differs: daily/dwl.json" in done.stdout


def test_a_local_copy_that_fails_its_checksums_is_refused(compared):
    out, root = compared["out"], compared["root"]
    copy = root / "corrupt-copy"
    shutil.copytree(out / "local-copy", copy)
    path = copy / "lofar" / f"{compared['prefix']}/ams.csv"
    path.write_bytes(path.read_bytes()[:-5] + b"99.9\n")  # index left as it was
    third = root / "third"
    done = _compare(third, compared["env"], compared["args"], compared["prefix"],
                    "--datalake-workdir", str(out / "datalake"), "--local-copy", str(copy))
    assert done.returncode == 2
    log = (third / "local" / "snakemake.log").read_text()
    assert "the local copy is not usable: adler32 mismatch" in log
    assert "Traceback" not in log
    assert not (third / "local" / "results" / "daily" / "ams.json").exists()

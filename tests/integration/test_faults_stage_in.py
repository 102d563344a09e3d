"""Stage-in under real faults: a storage server killed, Snakemake killed mid-run, a full local disk,
a killed run's leftovers. Nothing is mocked: processes get SIGKILL, the disk is a real tmpfs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from datalake_core import materialise, transfer_http
from datalake_core.journal import read_events
from datalake_core.materialise import CorruptReplica, LocalWriteError
from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PRESENT = "already present and verified"
HANG_GUARD = 180.0  # seconds; only ever reached if something hangs

# One job per small input, each waiting for a gate file once it has started (so that the test
# can kill Snakemake while jobs run), then one job reading a big input staged after all of them.
GATED_SNAKEFILE = """
import sys
PREFIX = config["prefix"]
SBS = [f"{i:03d}" for i in range(int(config["count"]))]
CHECK = ("import sys, zlib; d = open(sys.argv[1], 'rb').read(); "
         "print(f'{sys.argv[2]} {len(d)} {zlib.adler32(d) & 0xFFFFFFFF:08x}')")
GATE = "mkdir -p started; touch started/{wildcards.sb}; " \\
       "for i in $(seq 600); do [ -e gate ] && break; sleep 0.1; done; "

rule all:
    input: "done.txt"

rule check:
    input: storage.datalake(f"datalake://lofar/{PREFIX}/SB{{sb}}.dat")
    output: "checked/{sb}.txt"
    params: py=sys.executable, code=CHECK
    shell: GATE + "{params.py} -c {params.code:q} {input} {wildcards.sb} > {output}"

rule gather:
    input:
        checked=expand("checked/{sb}.txt", sb=SBS),
        big=storage.datalake(f"datalake://lofar/{PREFIX}/big.dat"),
    output: "done.txt"
    params: py=sys.executable, code=CHECK
    shell:
        "cat {input.checked} > {output}; "
        "{params.py} -c {params.code:q} {input.big} big >> {output}"
"""


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def _seed_same(rucio, names: list[str], rses: list[str], size: int = 4096) -> dict[str, bytes]:
    """The same bytes registered as replicas on several RSEs (written into their directories)."""
    from rucio.rse import rsemanager

    data = {n: os.urandom(size) + n.encode() for n in names}
    for rse in rses:
        lfns = [{"scope": "lofar", "name": n} for n in names]
        pfns = rsemanager.lfns2pfns(rucio.rse_info(rse), lfns, operation="write", scheme="file")
        for name in names:
            path = Path(pfns[f"lofar:{name}"].removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[name])
        rucio.add_replicas(rse, [{"scope": "lofar", "name": n, "bytes": len(data[n]),
                                  "adler32": _adler(data[n])} for n in names])
    return data


def _args(datalake_args: list[str], site: str, unique: str, count: int, *extra: str) -> list[str]:
    return [*datalake_args, "--storage-datalake-site-rse", site,
            "--storage-datalake-stage-policy", "download",
            "--storage-datalake-max-concurrent-transfers", "2", *extra,
            "--config", f"prefix={unique}", f"count={count}"]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started, and wait until they are gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _inputs(workdir: Path, run: str | None = None) -> dict[str, str]:
    """`how` of each input event in the journal (of one run, or all), by DID."""
    return {e["did"]: e["how"] for e in read_events(workdir)
            if e["event"] == "input" and (run is None or e["run"] == run)}


def _runs(workdir: Path) -> set[str]:
    return {e["run"] for e in read_events(workdir)}


# -- 1: a storage server dies -------------------------------------------------------------------

def test_dead_webdav_server_is_skipped_for_the_next_replica(testbed, rucio, unique, datalake_args,
                                                            run_snakemake, client_env, tmp_path):
    # Site C reads its own storage over WebDAV, so its replica comes first; SITE_B has the same
    # files. SITE_C's WebDAV server is killed (SIGKILL) before the run.
    names = [f"{unique}/SB{i:03d}.dat" for i in range(2)]
    data = _seed_same(rucio, names, ["SITE_C_DAV", "SITE_B_DISK"])
    dav = next(p for p in testbed.services() if p.name == "webdav-SITE_C_DAV")
    port = testbed.layout.ports()["dav_SITE_C_DAV"]
    proc = dav.process()
    assert proc is not None
    _kill_tree(proc.pid)
    try:
        assert not dav.healthy()
        result = run_snakemake(tmp_path, SNAKEFILE, _args(datalake_args, "SITE_C_DAV", unique, 2),
                               client_env)
    finally:
        testbed.up()
    assert dav.healthy(), "the WebDAV server must be back for the other tests"
    assert result.returncode == 0, result.stderr[-4000:]
    for name in names:
        assert (f"replica of lofar:{name} on SITE_C_DAV skipped: cannot reach "
                f"https://127.0.0.1:{port}: Connection refused") in result.stderr
        assert f"lofar:{name} via copy from SITE_B_DISK" in result.stderr
    assert _inputs(tmp_path) == {f"lofar:{n}": "copy from SITE_B_DISK" for n in names}
    expected = "".join(f"SB{i:03d} {len(data[n])} {_adler(data[n])}\n" for i, n in enumerate(names))
    assert (tmp_path / "summary.txt").read_text() == expected
    # Unreachable is not corrupt: nothing is reported as a bad replica.
    assert not [e for e in read_events(tmp_path) if e["event"] == "bad_replica"]


# -- 5: Snakemake killed mid-run ----------------------------------------------------------------

def _start(workdir: Path, args: list[str], env: dict[str, str], tag: str) -> subprocess.Popen:
    with open(workdir / f"snakemake-{tag}.log", "w") as log:  # the child has its own copy
        return subprocess.Popen([SNAKEMAKE, "-s", str(workdir / "Snakefile"), "-d", str(workdir),
                                 "--cores", "2", *args], cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def _wait_for(proc: subprocess.Popen, workdir: Path, tag: str, condition) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"Snakemake ended ({proc.returncode}) before it could be killed:\n"
                        + (workdir / f"snakemake-{tag}.log").read_text()[-4000:])
        if time.monotonic() > deadline:
            _kill_tree(proc.pid)
            pytest.fail(f"hang guard: condition not reached within {HANG_GUARD:.0f} s")
        time.sleep(0.002)


def _finals(storage: Path) -> dict[str, os.stat_result]:
    return {p.name: p.stat() for p in storage.iterdir() if not p.name.endswith(".part")}


def _assert_complete(storage: Path, expected: dict[str, bytes]) -> None:
    """Every file under a final name is whole: only `.part` files may be partial."""
    for name in _finals(storage):
        assert (storage / name).read_bytes() == expected[name], f"{name} is not complete"


def test_snakemake_killed_mid_run_resumes_without_fetching_again(seed, unique, datalake_args,
                                                                 client_env, run_snakemake,
                                                                 tmp_path):
    count = 6
    small = {f.did.name.rsplit("/", 1)[1]: f.data
             for f in seed([f"{unique}/SB{i:03d}.dat" for i in range(count)], "SITE_C_DAV")}
    big = seed([f"{unique}/big.dat"], "SITE_C_DAV", size=48 << 20)[0].data
    (tmp_path / "Snakefile").write_text(GATED_SNAKEFILE)
    # --nolock: a killed Snakemake leaves its lock behind (a user would run --unlock).
    args = _args(datalake_args, "SITE_A_DISK", unique, count, "--keep-storage-local-copies",
                 "--nolock")
    storage = tmp_path / ".snakemake" / "storage" / "datalake" / "lofar" / unique

    # Run 1: killed while the first two jobs run (their inputs are staged, the others not).
    first = _start(tmp_path, args, client_env, "1")
    try:
        _wait_for(first, tmp_path, "1", lambda: len(list((tmp_path / "started").glob("*"))) == 2
                  if (tmp_path / "started").is_dir() else False)
    finally:
        _kill_tree(first.pid)
    started = {f"SB{p.name}.dat" for p in (tmp_path / "started").iterdir()}
    staged = _finals(storage)
    assert set(staged) == started, "exactly the inputs of the started jobs were staged"
    _assert_complete(storage, {**small, "big.dat": big})
    [run1] = _runs(tmp_path)
    assert set(_inputs(tmp_path, run1)) == {f"lofar:{unique}/{n}" for n in started}

    # Run 2: resumes; killed while the big input (staged after every small job) is in transfer.
    (tmp_path / "gate").touch()
    second = _start(tmp_path, args, client_env, "2")
    try:
        _wait_for(second, tmp_path, "2", (storage / "big.dat.part").exists)
    finally:
        _kill_tree(second.pid)
    assert not (storage / "big.dat").exists(), "a partial file under the final name"
    _assert_complete(storage, {**small, "big.dat": big})
    [run2] = _runs(tmp_path) - {run1}
    transferred2 = {d for d, how in _inputs(tmp_path, run2).items() if how != PRESENT}
    assert transferred2 == {f"lofar:{unique}/{n}" for n in small if n not in started}
    for name, before in staged.items():  # the same files, not written again
        after = (storage / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # Run 3: completes, transferring only the big input; its stale .part is replaced.
    third = run_snakemake(tmp_path, tmp_path / "Snakefile", args, client_env)
    assert third.returncode == 0, third.stderr[-4000:]
    [run3] = _runs(tmp_path) - {run1, run2}
    transferred3 = {d for d, how in _inputs(tmp_path, run3).items() if how != PRESENT}
    assert transferred3 == {f"lofar:{unique}/big.dat"}
    assert not list(storage.glob("*.part"))
    assert (storage / "big.dat").read_bytes() == big
    lines = (tmp_path / "done.txt").read_text().splitlines()
    assert lines[-1] == f"big {len(big)} {_adler(big)}"
    assert sorted(lines[:-1]) == [f"{n[2:5]} {len(d)} {_adler(d)}"
                                  for n, d in sorted(small.items())]


# -- 7: the local staging area is full ----------------------------------------------------------

@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                  str(path)], capture_output=True, text=True)
        refused = mounted.stderr.strip() if mounted.returncode != 0 else None
    except FileNotFoundError:
        refused = "no mount command"
    if refused is not None:
        pytest.skip(f"mounting a tmpfs is not permitted here ({refused}); the full-disk fault "
                    "needs a small real file system")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]


def test_full_local_storage_is_a_clear_error_before_any_transfer(seed, unique, datalake_args,
                                                                 run_snakemake, client_env,
                                                                 tmp_path):
    seed([f"{unique}/SB000.dat"], "SITE_C_DAV", size=2 << 20)
    with _tmpfs(tmp_path / "small-disk", "1m") as disk:
        result = run_snakemake(tmp_path, SNAKEFILE, _args(
            datalake_args, "SITE_A_DISK", unique, 1, "--local-storage-prefix", str(disk)),
            client_env)
        leftovers = _files_under(disk)
    assert result.returncode != 0
    dest = disk / "datalake" / "lofar" / unique / "SB000.dat"
    assert (f"lofar:{unique}/SB000.dat: not enough space for {dest}: needs 2.0 MiB, 1.0 MiB "
            "free") in result.stderr
    assert leftovers == [], "nothing may be left, neither under the final name nor as .part"


def test_file_that_fits_a_nearly_full_local_storage_is_staged(seed, unique, datalake_args,
                                                              run_snakemake, client_env,
                                                              tmp_path):
    seed([f"{unique}/SB000.dat"], "SITE_C_DAV", size=600 << 10)  # 0.6 MiB on a 1 MiB disk
    with _tmpfs(tmp_path / "small-disk", "1m") as disk:
        result = run_snakemake(tmp_path, SNAKEFILE, _args(
            datalake_args, "SITE_A_DISK", unique, 1, "--local-storage-prefix", str(disk)),
            client_env)
    assert result.returncode == 0, result.stderr[-3000:]


def test_disk_filling_up_during_a_transfer_is_a_clear_error(testbed, rucio, unique, tmp_path):
    # The space check passes (or is skipped), then the disk fills while the bytes arrive: the
    # writers meet ENOSPC for real, over https and from a local replica.
    name = f"{unique}/big.dat"
    data = _seed_same(rucio, [name], ["SITE_C_DAV", "SITE_B_DISK"], size=2 << 20)[name]
    [replica] = rucio.list_replicas([Did("lofar", name)])
    pfn = {v["rse"]: k for k, v in replica["pfns"].items()}
    with _tmpfs(tmp_path / "small-disk", "1m") as disk:
        dest = disk / "big.dat"
        full = re.escape(f"not enough space for {dest}: needs 2.0 MiB")
        with pytest.raises(LocalWriteError, match=full):
            transfer_http.fetch(pfn["SITE_C_DAV"], dest, size=len(data), adler32=_adler(data),
                                verify=str(testbed.pki.ca_cert), timeout=30)
        assert _files_under(disk) == []
        with pytest.raises(LocalWriteError, match=full):
            materialise.copy(Path(pfn["SITE_B_DISK"].removeprefix("file://")), dest,
                           size=len(data), adler32=_adler(data))
        assert _files_under(disk) == []


# -- a killed run's leftovers -------------------------------------------------------------------

def test_stale_part_link_is_replaced_not_written_through(tmp_path):
    # A run killed between linking `x.part` to a replica and renaming it leaves that symlink;
    # the next attempt (here from a replica that turns out corrupt) must not write into it.
    replica = tmp_path / "rse" / "x.dat"
    replica.parent.mkdir()
    good = os.urandom(1 << 16)
    replica.write_bytes(good)
    other = tmp_path / "other" / "x.dat"
    other.parent.mkdir()
    other.write_bytes(bytes(b ^ 0xFF for b in good))
    dest = tmp_path / "local" / "x.dat"
    dest.parent.mkdir()
    materialise.part_name(dest).symlink_to(replica)
    with pytest.raises(CorruptReplica, match="adler32 mismatch"):
        materialise.copy(other, dest, size=len(good), adler32=_adler(good))
    assert replica.read_bytes() == good, "the replica behind the stale link was overwritten"
    assert not dest.exists() and not materialise.part_name(dest).is_symlink()
    materialise.copy(replica, dest, size=len(good), adler32=_adler(good))
    assert dest.read_bytes() == good and not dest.is_symlink()

"""`lofar-datalake demo`: a short tour of the local DataLake, each step printed with its timing.

Upload a file to SITE_A, replicate it to SITE_B (posix) and SITE_C (WebDAV) through Rucio rules
(the conveyor daemons hand the copies to the FTS service), download it back from SITE_C and check
that every copy has the original's adler32.

Also how both demos print a command: as typed in the user's directory, so that it runs as printed.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import tempfile
import time
from pathlib import Path

from datalake_core.checksums import adler32_of_file
from datalake_core.rucio_adapter import Did, RucioAdapter, RuleState

from ..layout import PROJECT_ROOT, Layout, default_dir
from ..orchestrator import Testbed

ROOT = PROJECT_ROOT
PAYLOAD_BYTES = 16 * 1024 * 1024
RULE_TIMEOUT = 120.0


def project_dir() -> Path:
    """Where the demo works and what the commands it prints are relative to: the current
    directory when it holds the project (the README's commands run from there), else the
    checkout this package belongs to."""
    here = Path.cwd()
    if (here / "Snakefile").is_file() and (here / "profiles" / "local").is_dir():
        return here
    return ROOT


def tool(name: str, base: Path) -> str:
    """This environment's command `name` as typed in directory `base`: `.venv/bin/<name>`
    when that is the one running, else its absolute path."""
    running = Path(sys.executable).with_name(name)
    local = base / ".venv" / "bin" / name
    if local.exists() and local.resolve() == running.resolve():
        return f".venv/bin/{name}"
    return str(running)


def shown(path: Path, base: Path) -> str:
    """`path` as typed in directory `base`: relative when it lies inside."""
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def env_command(bed: Testbed, base: Path) -> str:
    """The shell line, typed in `base`, that points rucio/fts3 clients at `bed`."""
    args = [tool("lofar-datalake", base), "testbed", "env"]
    if bed.layout.root.resolve() != default_dir().resolve():
        args += ["--dir", str(bed.layout.root)]
    return f'eval "$({shlex.join(args)})"'


def _step(text: str) -> float:
    print(f"==> {text}", flush=True)
    return time.monotonic()


def _done(started: float, detail: str = "") -> None:
    print(
        f"    done in {time.monotonic() - started:.2f} s{(': ' + detail) if detail else ''}",
        flush=True,
    )


def point_clients_at(bed: Testbed) -> None:
    """Environment for the Rucio client, as `lofar-datalake testbed env` prints it."""
    os.environ.update(bed.client_env())


def _replicate(rucio: RucioAdapter, did: Did, rse: str) -> None:
    started = _step(f"rule: 1 copy of {did} on {rse} (Rucio conveyor -> FTS moves the bytes)")
    rule_id = rucio.add_rule([did], rse, lifetime=24 * 3600)
    seen: list[str] = []

    def progress(state: RuleState) -> None:
        if not seen or seen[-1] != state.state:
            seen.append(state.state)
            print(f"    rule {rule_id[:8]}… {state.state}", flush=True)

    rucio.wait_rule(rule_id, RULE_TIMEOUT, poll=0.5, progress=progress)
    _done(started)


def run_demo(state_dir: Path | None = None) -> int:
    bed = Testbed(Layout(state_dir or default_dir()))
    if not bed.status():
        print("the testbed is not fully up; run `lofar-datalake testbed up` first")
        return 1
    point_clients_at(bed)
    rucio = RucioAdapter()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    did = Did("lofar", f"demo/{run_id}/L000000_SB000_uv.MS.tar")

    with tempfile.TemporaryDirectory(prefix="lofar-datalake-demo-") as tmp:
        source = Path(tmp) / "payload.bin"
        source.write_bytes(os.urandom(PAYLOAD_BYTES))
        original = adler32_of_file(source)

        started = _step(f"upload {PAYLOAD_BYTES // 2**20} MiB as {did} to SITE_A_DISK")
        rucio.upload(source, did, "SITE_A_DISK")
        _done(started, f"adler32 {original}")

        _replicate(rucio, did, "SITE_B_DISK")
        _replicate(rucio, did, "SITE_C_DAV")

        started = _step("replicas in the catalogue")
        for replica in rucio.list_replicas([did]):
            for rse, state in sorted(replica["states"].items()):
                pfn = next(iter(replica["rses"].get(rse, [])), "")
                print(f"    {rse:<12} {state:<10} {pfn}")
        _done(started)

        started = _step(
            "download from SITE_C_DAV (WebDAV over TLS, the certificate verified against the "
            "testbed CA) and verify adler32"
        )
        fetched = rucio.download(did, "SITE_C_DAV", Path(tmp) / "download")
        copy = adler32_of_file(fetched)
        _done(started, f"adler32 {copy}")

    if copy != original:
        print(f"FAILED: downloaded copy has adler32 {copy}, expected {original}")
        return 1
    print(f"demo OK: {did} uploaded, replicated to 3 sites by rules, downloaded intact.")
    print("Point your own rucio/fts3 clients at this DataLake with:")
    print(f"    $ {env_command(bed, Path.cwd())}")
    return 0

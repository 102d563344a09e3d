"""The one adapter that runs the external tools (DP3, WSClean) of the pipeline.

Each run gets the environment these tools need here: one OpenBLAS thread (DP3 aborts with
OpenBLAS' own threading), a casarc naming the measures data shipped with python-casacore
(without it DP3 cannot find the LOFAR observatory position), and EVERYBEAM_DATADIR naming the
station beam's element coefficients the everybeam wheel installs (the EveryBeam inside the dp3
wheel finds them no other way; without them `applybeam` and `usebeammodel` fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
CASACORE_DATA = SITE_PACKAGES / "casacore" / "data"
AOFLAGGER_STRATEGIES = SITE_PACKAGES / "DP3.libs" / "aoflagger" / "strategies"
EVERYBEAM_DATA = Path(sys.prefix) / "share" / "everybeam"


class ToolError(RuntimeError):
    """An external tool exited non-zero; the log file holds its output."""


def dp3_executable() -> str:
    """`DP3` from a container or system install, else the entry point of the dp3 wheel."""
    for name in ("DP3", "DP3.py"):
        found = shutil.which(name)
        if found:
            return found
    beside = Path(sys.executable).with_name("DP3.py")
    if beside.exists():
        return str(beside)
    raise ToolError("DP3 not found: install the `pipeline` extra or put DP3 on PATH")


def wsclean_executable() -> str:
    found = shutil.which("wsclean")
    if not found:
        raise ToolError("wsclean not found on PATH")
    return found


def tool_env(casarc: Path) -> dict[str, str]:
    """The job's environment for a tool; writes `casarc` unless CASARCFILES is already set."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    if "EVERYBEAM_DATADIR" not in env and EVERYBEAM_DATA.is_dir():
        env["EVERYBEAM_DATADIR"] = str(EVERYBEAM_DATA)
    if "CASARCFILES" not in env and CASACORE_DATA.is_dir():
        casarc.parent.mkdir(parents=True, exist_ok=True)
        casarc.write_text(f"measures.directory: {CASACORE_DATA}\n")
        env["CASARCFILES"] = str(casarc)
    return env


def run(cmd: Sequence[str], log: Path) -> None:
    """Run `cmd` in the job's directory, appending its output to `log`; raise on failure."""
    env = tool_env(log.with_suffix(".casarc"))
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise ToolError(f"{Path(cmd[0]).name} exited with {done.returncode}; see {log}")


def format_parset(parset: Mapping[str, object]) -> str:
    """DP3 parset text: `key=value` lines, lists as `[a,b]`."""
    lines = []
    for key, value in parset.items():
        if isinstance(value, list | tuple):
            value = "[" + ",".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def run_dp3(parset: Mapping[str, object], parset_file: Path, log: Path) -> None:
    """Write `parset` to `parset_file` (kept as provenance) and run DP3 on it."""
    parset_file.parent.mkdir(parents=True, exist_ok=True)
    parset_file.write_text(format_parset(parset))
    run([dp3_executable(), str(parset_file)], log)


def run_wsclean(args: Sequence[str], log: Path) -> None:
    run([wsclean_executable(), *args], log)

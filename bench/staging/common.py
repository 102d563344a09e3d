"""What the staging and compute benchmarks share: the testbed's client environment, cold page
cache, timing, medians and paired ratios, and the figure records `bench/summary.py` reads."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from record import Provenance, spread, write

from lofar_datalake_testbed.layout import Layout
from lofar_datalake_testbed.orchestrator import Testbed

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
MiB = 2**20
CA_ENV = "LOFAR_BENCH_CA_BUNDLE"  # the testbed's CA, for the benchmarks' own https requests


def client_env(testbed_dir: Path) -> dict[str, str]:
    """Point Rucio clients (this process and subprocesses) at the testbed; fail clearly if it
    does not answer."""
    bed = Testbed(Layout(testbed_dir.resolve()))
    env = {
        "RUCIO_CONFIG": str(bed.layout.client_config),
        "X509_USER_PROXY": str(bed.pki.proxy),
    }
    os.environ.update(env)
    from datalake_core.rucio_adapter import RucioAdapter

    try:
        RucioAdapter().client.whoami()
    except Exception as exc:
        raise SystemExit(
            f"no testbed answering at {testbed_dir} ({type(exc).__name__}); start one: "
            f"{BIN / 'lofar-datalake'} testbed up --dir {testbed_dir}"
        ) from None
    os.environ[CA_ENV] = str(bed.pki.ca_cert)
    return {**env, "CA_BUNDLE": str(bed.pki.ca_cert)}


def drop_caches(enabled: bool) -> bool:
    """Write back dirty pages, then empty the page cache so that every timed variant reads
    from disk; False where that is not allowed (then all variants run with a warm cache)."""
    os.sync()
    if not enabled:
        return False
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(cmd: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
    """A command whose failure ends the benchmark (with its output)."""
    done = subprocess.run(list(cmd), env=env, capture_output=True, text=True, check=False)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n{output}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float | None:
    """Median over repetitions of numerator/denominator of the same repetition: both were
    timed back to back, so drift on a shared machine cancels out better than in a ratio of
    medians."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]
    return round(median(ratios), 3) if ratios else None


def figure(name: str, value: float, unit: str, *, baseline: float | None = None,
           baseline_name: str | None = None, ratio: float | None = None,
           ratio_means: str | None = None, goal: dict[str, Any] | None = None,
           note: str | None = None, values: Sequence[float] | None = None,
           baseline_values: Sequence[float] | None = None,
           ratios: Sequence[float] | None = None) -> dict[str, Any]:
    """One row of the summary. `goal` is {"on": "ratio"|"value", "op": "<="|">=", "target": x,
    "text": ...}; `met` is derived from it here so that every reader agrees. `values`,
    `baseline_values` and `ratios` are the repetitions behind the medians (recorded with their
    spread)."""
    met = None
    if goal is not None:
        subject = ratio if goal["on"] == "ratio" else value
        if subject is not None:
            met = subject <= goal["target"] if goal["op"] == "<=" else subject >= goal["target"]
    return {"figure": name, "value": round(value, 3), "unit": unit, "baseline": None
            if baseline is None else round(baseline, 3), "baseline_name": baseline_name,
            "ratio": ratio, "ratio_means": ratio_means, "goal": goal, "met": met, "note": note,
            "spread": {k: spread(v) for k, v in (("value", values), ("baseline",
                       baseline_values), ("ratio", ratios)) if v}}


def goal(on: str, op: str, target: float, text: str) -> dict[str, Any]:
    return {"on": on, "op": op, "target": target, "text": text}


def write_results(path: Path, benchmark: str, figures: list[dict[str, Any]],
                  provenance: Provenance, **details: Any) -> None:
    write(path, {"benchmark": benchmark, "figures": figures, **details}, provenance)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

"""Data on tape: a workflow over N subbands whose only replicas are on LTA_TAPE, run with the
storage plugin (Rucio recalls them within the window and each job starts once its own subband
is online) against today's practice, "recall everything, then process" (one rule per file on
the staging area, wait until all are online, then run the same workflow), in each repetition.
Writes bench/results/tape.json in the figures format bench/summary.py reads.

It starts a testbed of its own (in a temporary directory) whose tape library takes
`--recall-seconds` per file on `--tape-drives` drives. Goals: at N = 48 the makespan
is at most 0.75 of the baseline's, and the first job starts within 1.2 x the first file's recall
time (both counted from the recall request: until the first file is online in Rucio, and until
the first job starts).

    .venv/bin/python bench/bench_tape.py [--subbands 48] [--recall-seconds 5] [--tape-drives 2]
        [--in-flight N] [--schedulers greedy,ilp] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from record import RESULTS, Provenance, Target, paired_ratios, scratch, spread, write

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = Path(__file__).resolve().parent / "tape" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
MAKESPAN = Target("ratio", "<=", 0.75, "<= 0.75x recall everything, then process")
FIRST_JOB = Target("ratio", "<=", 1.2, "<= 1.2x the first file's recall")


def on_tape(bed: Any, rucio: Any, prefix: str, n: int, size: int) -> list[Any]:
    """N files written into the tape library and registered on LTA_TAPE only (nearline)."""
    from rucio.rse import rsemanager

    from datalake_core.rucio_adapter import Did
    from lofar_datalake_testbed.layout import TAPE_RSE

    names = [f"{prefix}/SB{i:03d}.dat" for i in range(n)]
    info = rucio.rse_info(TAPE_RSE)
    pfns = rsemanager.lfns2pfns(info, [{"scope": "lofar", "name": n} for n in names],
                                operation="read", scheme="https")
    files = []
    for name in names:
        data = os.urandom(size)
        path = bed.layout.rse_dir(TAPE_RSE) / str(pfns[f"lofar:{name}"]).split("/", 3)[3]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append({"scope": "lofar", "name": name, "bytes": len(data),
                      "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"})
    rucio.add_replicas(TAPE_RSE, files)
    return [Did("lofar", n) for n in names]


def run_workflow(bed: Any, workdir: Path, prefix: str, args: argparse.Namespace,
                 variant: Variant) -> float:
    """The workflow over the subbands under `prefix`; its wall time."""
    workdir.mkdir(parents=True)
    window = (["--storage-datalake-recall-files-in-flight", str(variant.in_flight)]
              if variant.in_flight else [])
    command = [SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(workdir), "--cores", str(args.cores),
               "--scheduler", variant.scheduler,
               "--storage-datalake-rucio-config", str(bed.layout.client_config),
               "--storage-datalake-ca-bundle", str(bed.pki.ca_cert),
               "--storage-datalake-stage-timeout", "1800", *window,
               "--config", f"prefix={prefix}", f"count={args.subbands}", f"work={args.work}"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=workdir, env={**os.environ, **bed.client_env()},
                          capture_output=True, text=True, timeout=7200)
    (workdir / "snakemake.log").write_text(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the workflow failed; see {workdir / 'snakemake.log'}")
    return time.monotonic() - started


def recall_everything(rucio: Any, dids: list[Any], timeout: float = 7200) -> float:
    """Today's practice: every file recalled (one rule each on the staging area, one request),
    waiting until all are online; its wall time."""
    from lofar_datalake_testbed.layout import STAGING_RSE

    started = time.monotonic()
    rucio.add_rules(dids, STAGING_RSE, lifetime=3600, comment="bench_tape baseline")
    while time.monotonic() - started < timeout:
        states = [r["states"].get(STAGING_RSE) for r in rucio.list_replicas(dids)]
        if all(s == "AVAILABLE" for s in states):
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("the baseline's recall did not end")


def first_job(workdir: Path) -> tuple[float, float]:
    """From the plugin's journal and the jobs' outputs: seconds from the first recall request
    until the first file was online, and until the first job started."""
    from datalake_core.journal import read_events

    recalls = [e for e in read_events(workdir) if e["event"] == "recall"]
    requested = min(e["time"] for e in recalls if e["action"] == "requested")
    online = min(e["time"] for e in recalls if e["action"] == "online")
    starts = [float(p.read_text().split()[0]) for p in (workdir / "processed").glob("*.txt")]
    return online - requested, min(starts) - requested


def one_repetition(bed: Any, rucio: Any, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Per variant, the plugin's workflow over N fresh subbands on tape; then the baseline
    over N others. Everything on the same testbed, back to back."""
    tag = uuid.uuid4().hex[:8]
    runs: dict[str, Any] = {}
    for variant in args.variants:
        slug = variant.name.replace(":", "-")
        prefix = f"bench/tape-{tag}/{slug}"
        on_tape(bed, rucio, prefix, args.subbands, args.file_bytes)
        print(f"==> plugin, {variant.describe()}: {args.subbands} subbands on tape, jobs start "
              "as theirs are online", flush=True)
        makespan = run_workflow(bed, root / slug, prefix, args, variant)
        recall_s, first_start_s = first_job(root / slug)
        print(f"    makespan {makespan:.1f} s; first file online after {recall_s:.1f} s, first "
              f"job started after {first_start_s:.1f} s", flush=True)
        runs[variant.name] = {"makespan": makespan, "first_recall": recall_s,
                              "first_start": first_start_s}
    theirs = on_tape(bed, rucio, f"bench/tape-{tag}/baseline", args.subbands, args.file_bytes)
    print("==> baseline: recall everything, then process", flush=True)
    recall_all = recall_everything(rucio, theirs)
    process = run_workflow(bed, root / "baseline", f"bench/tape-{tag}/baseline", args,
                           args.variants[0])
    print(f"    recall {recall_all:.1f} s + processing {process:.1f} s", flush=True)
    return {"plugin": runs, "baseline": recall_all + process, "recall_all": recall_all,
            "process": process}


def measure(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    from lofar_datalake_testbed import components
    from lofar_datalake_testbed.layout import Layout, default_dir
    from lofar_datalake_testbed.orchestrator import Testbed
    from lofar_datalake_testbed.server_env import ENV_VAR

    # The servers' environment the project's testbed installed (as the tests share it).
    os.environ.setdefault(ENV_VAR, str(default_dir() / "server-env"))

    # The tape library of this testbed (read when its FTS service starts).
    components.RECALL_SECONDS, components.TAPE_DRIVES = args.recall_seconds, args.tape_drives
    bed = Testbed(Layout(root / "testbed"))
    try:
        bed.up()
        os.environ.update(bed.client_env())
        from datalake_core.rucio_adapter import RucioAdapter

        rucio = RucioAdapter()
        reps = []
        for i in range(args.reps):
            print(f"== repetition {i + 1} of {args.reps}", flush=True)
            reps.append(one_repetition(bed, rucio, root / f"rep-{i}", args))
        return reps
    finally:
        bed.down()


def figures(reps: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    setup = (f"N = {args.subbands}, recall {args.recall_seconds:g} s per file, "
             f"{args.tape_drives} drives, {args.work:g} s per job on {args.cores} cores")
    baseline = [r["baseline"] for r in reps]
    out = []
    for variant in args.variants:
        runs = [r["plugin"][variant.name] for r in reps]
        makespan = [r["makespan"] for r in runs]
        ratios = paired_ratios(makespan, baseline)
        first = [r["first_start"] / r["first_recall"] for r in runs]
        ratio, first_ratio = round(median(ratios), 3), round(median(first), 3)
        out += [
            {"figure": f"makespan over subbands on tape, {variant.describe()} ({setup})",
             "value": round(median(makespan), 2), "unit": "s",
             "baseline": round(median(baseline), 2),
             "baseline_name": "recall everything, then process",
             "ratio": ratio, "ratio_means": "plugin / baseline", "goal": MAKESPAN.as_dict(),
             "met": MAKESPAN.met(ratio),
             "spread": {"value": spread(makespan), "baseline": spread(baseline),
                        "ratio": spread(ratios)},
             "note": f"baseline = recall {median(r['recall_all'] for r in reps):.1f} s + "
                     f"processing {median(r['process'] for r in reps):.1f} s (medians)"},
            {"figure": f"  first job start from the recall request, {variant.name}",
             "value": round(median(r["first_start"] for r in runs), 2), "unit": "s",
             "baseline": round(median(r["first_recall"] for r in runs), 2),
             "baseline_name": "first file online in Rucio", "ratio": first_ratio,
             "ratio_means": "first job start / first file's recall", "goal": FIRST_JOB.as_dict(),
             "met": FIRST_JOB.met(first_ratio),
             "spread": {"value": spread([r["first_start"] for r in runs]),
                        "baseline": spread([r["first_recall"] for r in runs]),
                        "ratio": spread(first)}},
        ]
    return out


@dataclass(frozen=True)
class Variant:
    scheduler: str
    in_flight: int | None  # None: the plugin's default window

    @property
    def name(self) -> str:
        return self.scheduler + (f":{self.in_flight}" if self.in_flight else "")

    def describe(self) -> str:
        window = (f"{self.in_flight} files in flight" if self.in_flight
                  else "the default window (the LTA's)")
        return f"Snakemake's {self.scheduler} scheduler, {window}"


def variants(text: str) -> list[Variant]:
    out = []
    for item in text.split(","):
        scheduler, _, flight = item.partition(":")
        out.append(Variant(scheduler, int(flight) if flight else None))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subbands", type=int, default=48)
    parser.add_argument("--recall-seconds", type=float, default=5.0,
                        help="one drive's time to recall a file (default: %(default)s)")
    parser.add_argument("--tape-drives", type=int, default=2)
    parser.add_argument("--work", type=float, default=4.0,
                        help="seconds each job is busy (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--variants", default="greedy,greedy:12,ilp", type=variants,
                        help="the plugin's runs, each measured against the same baseline: "
                        "Snakemake's job selector, and after a colon the recall window's files "
                        "in flight (else the plugin's default, the LTA's 5,000) (default: "
                        "%(default)s; greedy starts equal jobs in the order the plugin recalls "
                        "their inputs, ilp is Snakemake's default)")
    parser.add_argument("--reps", type=int, default=3, help="at least 3 (default: %(default)s)")
    parser.add_argument("--file-bytes", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=RESULTS / "tape.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a new directory for the runs and their testbed, kept afterwards")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps: a median needs at least 3 repetitions")
    provenance = Provenance()
    # As the tests' testbeds: not under a private temporary directory of another tool.
    with scratch("lofar-datalake-bench-tape-", args.keep) as root:
        measured = measure(args, root)
    write(args.json, {
        "benchmark": "tape", "repetitions": args.reps, "figures": figures(measured, args),
        "runs": measured,
        "method": "each repetition, on one testbed: per scheduler, the plugin's workflow over "
                  "N fresh subbands on tape; then the same workflow over N other subbands "
                  "recalled all together beforehand (one rule each on the staging area, "
                  "waiting for all); the ratio is the median of the per-repetition ratios",
    }, provenance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Compute efficiency of the pipeline's stages: CPU seconds per wall second of each stage, against
the threads it is given, from Snakemake's benchmark files (benchmarks/<stage>/*.tsv) of a run.

By default runs the workflow in local-input mode on the simulated demo observation (demo/data if
`lofar-datalake demo` made it, else simulated the same way into the scratch directory) with
--cores 2 and the workflow profile profiles/default (threads per rule); `--run-dir` analyses a
finished run instead (threads from its Snakemake log, else from the profile). A stage "leaves a
core idle" when it holds more cores than its CPU/wall uses by half a core or more. About 2
minutes (a run of ~100 s).

With `--linc` it runs LOFAR's calibrator strategy (calibration.strategy linc) instead, on sky-a
of the LINC skies (8 subbands over 120-180 MHz, bandpass, clocks, ionosphere, the station beam
out to its half-power radius; `science_skies.linc_settings`), and records each stage's wall
time as well (bench/results/compute_linc.json). About 5 minutes.

    .venv/bin/python bench/bench_compute.py [--run-dir DIR] [--keep] [--linc]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from record import RESULTS, Provenance
from resolution.runner import without_slurm_probe
from staging.common import BIN, ROOT, figure, say, write_results

PROFILE = ROOT / "profiles" / "default"
IDLE = 0.5  # cores held but not used, on average, from which a stage "leaves a core idle"
SAMPLED_EVERY_SECOND = 30.0  # Snakemake's benchmark sampling, see stages()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="analyse this finished run directory")
    parser.add_argument("--data", type=Path, default=ROOT / "demo" / "data",
                        help="simulated observation (default: %(default)s, made if missing)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the run directory goes (default: system temporary dir)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--linc", action="store_true",
                        help="LOFAR's calibrator strategy on 8 subbands (120-180 MHz)")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: bench/results/compute.json (compute_linc.json)")
    args = parser.parse_args()
    if args.json is None:
        args.json = RESULTS / ("compute_linc.json" if args.linc else "compute.json")
    return args


def simulated(data: Path, scratch: Path, linc: bool = False) -> Path:
    from lofar_datalake.simulate.observation import SimulationParams, simulate
    from lofar_datalake.simulate.science_skies import LINC_SKIES

    if linc:
        data = scratch / "data-linc"
        say(f"simulating sky-a of the LINC skies (8 subbands over 120-180 MHz) into {data}")
        simulate(LINC_SKIES["sky-a"], data)
        return data
    if (data / "observations.tsv").exists():
        return data

    data = scratch / "data"
    say(f"simulating the demo observation into {data}")
    simulate(SimulationParams(seed=1, sky_seed=1), data)  # the demo's parameters
    return data


def run_pipeline(data: Path, run_dir: Path, cores: int, linc: bool = False) -> dict[str, float]:
    """The workflow in local-input mode; wall time and CPU of Snakemake with all its jobs."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config |= {"input_mode": "local", "observations": str(data / "observations.tsv"),
               "truth": str(data / "truth")}
    config["local"]["data_dir"] = str(data)
    config["calibration"]["skymodel"] = str(data / "calibrator.skymodel")
    if linc:
        from lofar_datalake.simulate.science_skies import with_linc_settings

        with_linc_settings(config, data)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(run_dir),
           "--cores", str(cores), "--workflow-profile", str(PROFILE),
           "--configfile", str(run_dir / "config.yaml")]
    # The slurm executor plugin's start-up probe only adds a constant wait.
    env = {**os.environ,
           "PATH": f"{without_slurm_probe(run_dir.parent)}{os.pathsep}{os.environ['PATH']}"}
    say("running: " + " ".join(cmd))
    with open(run_dir.parent / "snakemake.out", "w") as out:
        busy_before = machine_busy_s()
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this run's CPU, children included
        wall = time.monotonic() - started
        busy = machine_busy_s() - busy_before
    if os.waitstatus_to_exitcode(status) != 0:
        text = (run_dir.parent / "snakemake.out").read_text()
        raise SystemExit(f"the pipeline failed:\n{text[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    # On a shared machine a stage's CPU/wall also drops when others take the cores.
    return {"wall_s": wall, "cpu_s": cpu, "others_cores": max(0.0, busy - cpu) / wall}


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used so far (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def threads_from_log(run_dir: Path) -> dict[str, int]:
    """Benchmark file -> threads of its job, from the job blocks Snakemake logs (a block
    without a `threads:` line ran with one)."""
    out: dict[str, int] = {}
    for log in sorted((run_dir / ".snakemake" / "log").glob("*.log")):
        for block in re.split(r"\n(?=(?:local)?(?:check)?rule \w+:)", log.read_text()):
            bench = re.search(r"^\s+benchmark: (\S+)", block, re.M)
            if bench:
                threads = re.search(r"^\s+threads: (\d+)", block, re.M)
                out[bench.group(1)] = int(threads.group(1)) if threads else 1
    return out


def threads_from_profile(rule: str, cores: int) -> int:
    """Where no log says: the profile's set-threads, else the rule's own `threads:`."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text()) or {}
    if rule in (profile.get("set-threads") or {}):
        return min(int(profile["set-threads"][rule]), cores)
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        match = re.search(rf"^rule {rule}:\n(?:[ \t].*\n|\n)*?\s+threads: (\d+)",
                          smk.read_text(), re.M)
        if match:
            return min(int(match.group(1)), cores)
    return 1


def stages(run_dir: Path, cores: int) -> dict[str, dict[str, Any]]:
    by_log = threads_from_log(run_dir)
    out: dict[str, dict[str, Any]] = {}
    for tsv in sorted((run_dir / "benchmarks").glob("*/*.tsv")):
        stage = tsv.parent.name
        with open(tsv, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rel = str(tsv.relative_to(run_dir))
        threads = by_log.get(rel) or threads_from_profile(stage, cores)
        s = out.setdefault(stage, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "threads": 0,
                                   "max_rss_mb": 0.0, "threads_from": "log" if rel in by_log
                                   else "profile"})
        s["jobs"] += 1
        s["wall_s"] += float(row["s"])
        s["longest_job_s"] = max(s.get("longest_job_s", 0.0), float(row["s"]))
        s["cpu_s"] += _num(row.get("cpu_time"))
        s["max_rss_mb"] = max(s["max_rss_mb"], _num(row.get("max_rss")))
        s["threads"] = max(s["threads"], threads)
    for s in out.values():
        s["cpu_per_wall"] = round(s["cpu_s"] / s["wall_s"], 3) if s["wall_s"] else 0.0
        s["idle_cores"] = round(s["threads"] - s["cpu_per_wall"], 2)
        s["leaves_core_idle"] = s["idle_cores"] >= IDLE
        # Snakemake samples CPU every second for 30 s, then every 30 s: beyond that the CPU
        # since the last sample is lost, so CPU/wall of such a job is a lower bound.
        s["cpu_lower_bound"] = s["longest_job_s"] > SAMPLED_EVERY_SECOND
    return out


def _num(text: str | None) -> float:
    try:
        return float(text or "")
    except ValueError:
        return 0.0  # "NA" or "-": a job faster than the first sample


def main() -> int:
    args = parse_args()
    provenance = Provenance()
    with tempfile.TemporaryDirectory(prefix="bench-compute-", dir=args.scratch) as name:
        scratch = Path(name)
        whole: dict[str, float] = {}
        if args.run_dir is not None:
            run_dir = args.run_dir.resolve()
        else:
            run_dir = scratch / "run"
            data = simulated(args.data.resolve(), scratch, args.linc)
            whole = run_pipeline(data, run_dir, args.cores, args.linc)
        per_stage = stages(run_dir, args.cores)
        if args.keep and args.run_dir is None:
            kept = ROOT / "benchmarks" / "compute-run"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(run_dir, kept, ignore=shutil.ignore_patterns("work"))
            say(f"run directory kept (without work/) in {kept}")
    if not per_stage:
        raise SystemExit(f"no benchmark files under {run_dir}/benchmarks")
    figures = []
    print(f"{'stage':<18}{'jobs':>5}{'wall s':>9}{'CPU s':>8}{'threads':>8}{'CPU/wall':>9}"
          f"{'idle cores':>11}")
    for stage, s in sorted(per_stage.items(), key=lambda kv: -kv[1]["wall_s"]):
        idle = (" <- leaves a core idle" if s["leaves_core_idle"] else "") + (
            " (CPU undercounted: a job > 30 s)" if s["cpu_lower_bound"] else "")
        print(f"{stage:<18}{s['jobs']:>5}{s['wall_s']:>9.1f}{s['cpu_s']:>8.1f}"
              f"{s['threads']:>8}{s['cpu_per_wall']:>9.2f}{s['idle_cores']:>11.2f}{idle}")
        figures.append(figure(
            f"stage {stage}: CPU s / wall s ({s['jobs']} job(s), {s['wall_s']:.0f} s)",
            s["cpu_per_wall"], "cores", baseline=s["threads"], baseline_name="threads held",
            ratio=round(s["cpu_per_wall"] / s["threads"], 3), ratio_means="share of held cores",
            note="; ".join(n for n in (
                f"leaves {s['idle_cores']:.1f} core(s) idle" if s["leaves_core_idle"] else "",
                "lower bound (a job > 30 s)" if s["cpu_lower_bound"] else "") if n) or None))
        if args.linc:
            figures.append(figure(
                f"stage {stage}: wall s, summed over {s['jobs']} job(s)", s["wall_s"], "s",
                note=f"longest job {s['longest_job_s']:.1f} s, peak RSS "
                     f"{s['max_rss_mb']:.0f} MB"))
    if whole:
        # How much of the run's CPU the benchmark files saw (the rest: Snakemake itself and
        # CPU after a job's last sample).
        whole["benchmark_files_cover"] = sum(s["cpu_s"] for s in per_stage.values()) / whole[
            "cpu_s"]
        used = whole["cpu_s"] / whole["wall_s"]
        print(f"whole run: {whole['wall_s']:.0f} s wall, {whole['cpu_s']:.0f} s CPU "
              f"(Snakemake and all jobs): {used:.2f} of {args.cores} cores; other processes "
              f"used {whole['others_cores']:.2f} cores meanwhile; the benchmark files account "
              f"for {whole['benchmark_files_cover']:.0%} of the run's CPU")
        figures.append(figure(
            "whole pipeline run (Snakemake + jobs): CPU s / wall s", used, "cores",
            baseline=args.cores, baseline_name="cores", ratio=round(used / args.cores, 3),
            ratio_means="share of the machine", note=f"{whole['wall_s']:.0f} s wall; other "
            f"processes used {whole['others_cores']:.2f} cores meanwhile"))
    idle_stages = [name for name, v in per_stage.items() if v["leaves_core_idle"]]
    print("stages that leave a core idle: " + (", ".join(idle_stages) or "none"))
    write_results(args.json, "compute_linc" if args.linc else "compute", figures, provenance,
                  run_dir=str(args.run_dir or "(temporary)"), repetitions=1,
                  cores=args.cores, stages=per_stage, whole_run=whole, idle_stages=idle_stages,
                  method="one run (no median); per stage: sum of cpu_time / sum of s over "
                         "its jobs' benchmark files; Snakemake samples a job's CPU every "
                         "second for 30 s, then every 30 s, so the CPU after the last sample "
                         "is not counted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

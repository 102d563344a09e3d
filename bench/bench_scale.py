"""Scale of the DAG: dry run of the LOFAR workflow in DataLake mode for observations with many
subbands (target: 244 subbands ≈ 2,000 jobs; 4 such observations), wall time and peak RSS of the
Snakemake process, and how both grow with the number of subbands.

The subband archives are registered in the local DataLake in bulk (tiny stand-in files: a dry run
never reads them). Run: `.venv/bin/python bench/bench_scale.py [--testbed DIR] [--sizes 61,122,244]
[--observations 1,4]`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from record import RESULTS, Provenance, spread, write  # noqa: E402
from resolution.seeding import SCOPE, register  # noqa: E402


def sheet(workdir: Path, tag: str, n_obs: int, n_sb: int) -> Path:
    rows = ["observation\trole\tsubband\tcalibrator\tpath\tdid"]
    for k in range(n_obs):
        cal, tgt = 800000 + 2 * k, 800001 + 2 * k
        for sb in range(n_sb):
            for obs, role, calref in ((cal, "calibrator", ""), (tgt, "target", f"L{cal}")):
                name = f"scale/{tag}/L{obs}_SB{sb:03d}_uv.MS.tar"
                rows.append(f"L{obs}\t{role}\t{sb:03d}\t{calref}\tL{obs}_SB{sb:03d}_uv.MS.tar"
                            f"\t{SCOPE}:{name}")
    path = workdir / "observations.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def dry_run(workdir: Path, testbed: Path, products: str) -> dict[str, float]:
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)  # each run starts afresh
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {"input_mode": "datalake", "observations": str(workdir / "observations.tsv")}
    config["calibration"]["skymodel"] = str(workdir / "cal.skymodel")
    config["datalake"]["products"] = products
    config["truth"] = ""  # no simulated truth: the QA rules only draw, as for real data
    (workdir / "cal.skymodel").write_text("")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-n",
           "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"),
           "--storage-datalake-rucio-config", str(testbed / "etc" / "rucio-client.cfg"),
           "--storage-datalake-site-rse", "SITE_A_DISK"]
    started = time.monotonic()
    log = workdir / "dryrun.log"
    with open(log, "w") as handle:  # a file, not a pipe: a full pipe would stall Snakemake
        proc = psutil.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, proc.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
    wall = time.monotonic() - started
    out = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(out[-3000:])
    totals = re.findall(r"^total\s+(\d+)", out, re.M)  # the "Job stats" table
    jobs = int(totals[-1]) if totals else -1
    return {"wall_s": wall, "peak_rss_mib": peak / 2**20, "jobs": jobs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--testbed", type=Path, default=REPO / ".testbed")
    parser.add_argument("--sizes", default="61,122,244")
    parser.add_argument("--observations", default="1,4")
    parser.add_argument("--repeat", type=int, default=3,
                        help="dry runs per size, at least 3 (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat: a median needs at least 3 repetitions")
    provenance = Provenance()
    os.environ["RUCIO_CONFIG"] = str(args.testbed / "etc" / "rucio-client.cfg")
    from datalake_core.rucio_adapter import RucioAdapter

    rucio = RucioAdapter()
    tag = f"{int(time.time())}"
    results = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for n_obs in (int(o) for o in args.observations.split(",")):
        for n_sb in sizes:
            with tempfile.TemporaryDirectory(prefix="lofar-scale-") as tmp:
                workdir = Path(tmp)
                run_tag = f"{tag}-{n_obs}x{n_sb}"
                path = sheet(workdir, run_tag, n_obs, n_sb)
                names = [line.split("\t")[5].split(":", 1)[1]
                         for line in path.read_text().splitlines()[1:]]
                # Tiny stand-in archives: a dry run never reads them.
                register(rucio, "SITE_B_DISK", {name: name.encode() for name in names})
                runs = [dry_run(workdir, args.testbed, f"products/{run_tag}")
                        for _ in range(args.repeat)]
            figures = {"wall_s": spread([r["wall_s"] for r in runs])["median"],
                       "peak_rss_mib": spread([r["peak_rss_mib"] for r in runs])["median"],
                       "jobs": runs[0]["jobs"], "observations": n_obs, "subbands": n_sb,
                       "inputs": len(names),
                       "spread": {"wall_s": spread([r["wall_s"] for r in runs]),
                                  "peak_rss_mib": spread([r["peak_rss_mib"] for r in runs])}}
            results.append(figures)
            print(f"{n_obs} obs x {n_sb:>3} subbands: {len(names):>5} inputs, "
                  f"{figures['jobs']:>5} jobs, dry run {figures['wall_s']:6.1f} s, "
                  f"peak RSS {figures['peak_rss_mib']:6.0f} MiB", flush=True)
    write(args.json, {"benchmark": "scale", "repetitions": args.repeat, "runs": results,
                      "method": "wall time and peak RSS (sampled every 50 ms) of `snakemake -n` "
                                "of the LOFAR workflow in DataLake mode; medians of the "
                                "repetitions"}, provenance)
    one = [r for r in results if r["observations"] == 1]
    if len(one) >= 2:
        a, b = one[0], one[-1]
        growth = (b["wall_s"] - a["wall_s"]) / (b["subbands"] - a["subbands"])
        print(f"wall time grows {growth * 100:.2f} s per 100 subbands (1 observation); "
              f"goal for 244 subbands: <= 15 s and <= 1 GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

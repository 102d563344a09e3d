"""DAG-build cost of DataLake inputs: `snakemake -n` for a workflow whose N inputs (default
1,000) belong to an intermediate rule, with the `datalake` storage plugin and with the same
files as local paths. Prints wall times (median of 3), the difference and ratio, and the number
of Rucio requests.

    .venv/bin/lofar-datalake testbed up --dir /tmp/tb-bench
    .venv/bin/python bench/bench_resolution.py --testbed /tmp/tb-bench [-n 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "tests" / "workflow" / "storage" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def seed(prefix: str, count: int, rse: str, local_dir: Path) -> None:
    """Write the inputs into the RSE and register them in bulk; the same bytes go to a local
    directory for the comparison run."""
    from rucio.rse import rsemanager

    from lofar_datalake.datalake.rucio_adapter import RucioAdapter

    rucio = RucioAdapter()
    names = [f"{prefix}/SB{i:03d}.dat" for i in range(count)]
    pfns = rsemanager.lfns2pfns(rucio.rse_info(rse), [{"scope": "lofar", "name": n}
                                                      for n in names],
                                operation="write", scheme="file")
    files = []
    for i, name in enumerate(names):
        data = os.urandom(64)
        path = Path(pfns[f"lofar:{name}"].removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        (local_dir / f"SB{i:03d}.dat").write_bytes(data)
        files.append({"scope": "lofar", "name": name, "bytes": len(data),
                      "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"})
    rucio.add_replicas(rse, files)


def dry_run(workdir: Path, config: list[str], extra: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [SNAKEMAKE, "-n", "-q", "rules", "-s", str(SNAKEFILE), "-d", str(workdir), "--cores",
         "1", *extra, "--config", *config],
        env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, required=True, help="a running testbed's dir")
    parser.add_argument("-n", type=int, default=1000, help="number of inputs")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from lofar_datalake.datalake.request_counter import ENV_VAR, read_counts
    from lofar_datalake.testbed.layout import Layout
    from lofar_datalake.testbed.orchestrator import Testbed

    bed = Testbed(Layout(args.testbed.resolve()))
    env = {**os.environ, "RUCIO_CONFIG": str(bed.layout.client_config),
           "X509_USER_PROXY": str(bed.pki.proxy)}
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="bench-resolution-") as tmp:
        tmpdir = Path(tmp)
        local = tmpdir / "local-inputs"
        local.mkdir()
        prefix = f"bench/{time.time_ns()}"
        seed(prefix, args.n, "SITE_A_DISK", local)
        plugin = ["--storage-datalake-rucio-config", str(bed.layout.client_config)]
        lake_times, local_times, requests = [], [], []
        for i in range(args.repeat):
            counts = tmpdir / f"requests-{i}.txt"
            lake_times.append(dry_run(tmpdir / f"lake-{i}", [f"prefix={prefix}",
                                                             f"count={args.n}"],
                                      plugin, {**env, ENV_VAR: str(counts)}))
            requests.append(read_counts(counts))
            local_times.append(dry_run(tmpdir / f"local-{i}", [
                f"prefix={prefix}", f"count={args.n}", f"local={local}"], [], env))
    lake, plain = statistics.median(lake_times), statistics.median(local_times)
    auth = [len([r for r in reqs if " /auth" in r]) for reqs in requests]
    other = [len(reqs) - a for reqs, a in zip(requests, auth, strict=True)]
    print(f"inputs of an intermediate rule:  {args.n}")
    print(f"dry-run, datalake plugin:        {lake:6.2f} s  (median of {args.repeat}: "
          f"{', '.join(f'{t:.2f}' for t in lake_times)})")
    print(f"dry-run, local files:            {plain:6.2f} s  (median of {args.repeat}: "
          f"{', '.join(f'{t:.2f}' for t in local_times)})")
    print(f"added by the DataLake:           {lake - plain:6.2f} s  (ratio {lake / plain:.2f})")
    print(f"Rucio requests per run:          {max(other)} (+ {max(auth)} authentication); "
          f"{sorted(set(requests[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Storing a product: what one `store_object` of the `datalake` provider costs, as the demo's
profile (profiles/local) configures it: upload to SITE_A_DISK, one extra rule to SITE_B_DISK,
attached to the run's dataset, provenance metadata set. Counts the Rucio requests of each store
with the project's request counter (authentication apart) and times it; medians over N
products (new DIDs each, 1 MiB of random bytes). Explains the per-product cost in the
end-to-end figure.

    .venv/bin/python bench/bench_upload.py [--products 11] [--json bench/results/upload.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from record import RESULTS, Provenance, spread, write
from staging.common import client_env, figure, median
from staging.files import SCOPE, write_random

from lofar_datalake_testbed.layout import default_dir

PROFILE = {"output_rse": "SITE_A_DISK", "output_rules": "1:SITE_B_DISK:2592000"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, default=default_dir())
    parser.add_argument("--products", type=int, default=11,
                        help="products stored, at least 3 (default: %(default)s, the demo's)")
    parser.add_argument("--json", type=Path, default=RESULTS / "upload.json")
    args = parser.parse_args()
    if args.products < 3:
        parser.error("--products: a median needs at least 3")
    provenance = Provenance()
    env = client_env(args.testbed)
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as name:
        counts = Path(name) / "requests"
        os.environ["LOFAR_DATALAKE_COUNT_REQUESTS"] = str(counts)
        from datalake_core import request_counter
        from datalake_core.outputs import Outputs
        from datalake_core.rucio_adapter import Did, RucioAdapter
        from datalake_core.settings import ProviderConfig

        request_counter.install_if_requested()
        cfg = ProviderConfig.parse({"rucio_config": env["RUCIO_CONFIG"],
                                    "ca_bundle": env["CA_BUNDLE"], **PROFILE})
        rucio = RucioAdapter.connect(cfg.rucio_config)
        rucio.client.whoami()  # authenticated before the first timed store, as in a run
        outputs = Outputs(cfg, lambda: rucio, logging.getLogger("bench.upload"),
                          run_id=f"bench-{time.time_ns()}", workflow="bench-upload")
        stamp = time.time_ns()
        seconds, requests = [], []
        for i in range(args.products):
            path = write_random(Path(name) / f"p{i}.dat", 2**20).path
            did = Did(SCOPE, f"bench/upload/{stamp}/product-{i}.dat")
            before = len(request_counter.read_counts(counts))
            started = time.perf_counter()
            outputs.store(did, path, {"created_by": "bench_upload", "snakemake_rule": "bench"})
            seconds.append(time.perf_counter() - started)
            made = request_counter.read_counts(counts)[before:]
            requests.append(sum(1 for r in made if not r.split(" ", 1)[-1].startswith("/auth")))
            print(f"  product {i + 1}/{args.products}: {seconds[-1]:.2f} s, {requests[-1]} "
                  f"Rucio requests", file=sys.stderr, flush=True)
        kinds = request_counter.read_counts(counts)
    figures = [
        figure("Rucio requests per stored product (upload, rule, dataset, metadata)",
               median(requests), "requests", values=requests,
               note="the first store also creates the run's dataset"),
        figure("wall time per stored product of 1 MiB (Snakemake stores them one at a time)",
               median(seconds), "s", values=seconds),
    ]
    for f in figures:
        print(f"{f['figure']}: {f['value']} {f['unit']} (min {f['spread']['value']['min']}, "
              f"max {f['spread']['value']['max']})")
    write(args.json, {"benchmark": "upload", "figures": figures, "settings": PROFILE,
                      "requests_each": requests, "seconds": spread(seconds),
                      "request_kinds": sorted(set(kinds))}, provenance)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`lofar-datalake compare --demo`: the comparison on the demo observation and the local
DataLake (`lofar-datalake testbed up`), with the embedded default site's profile."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ..demo_pipeline import (
    DEMO_DIR,
    ROOT,
    simulate_demo_data,
    testbed_args,
    write_demo_config,
)
from ..testbed.layout import Layout, default_dir
from ..testbed.orchestrator import Testbed
from ..testbed.seed import seed

if TYPE_CHECKING:
    from .command import Comparison


def prepare_demo(job: Comparison, fresh: bool = False) -> None:
    """The demo observation (or, `fresh`, a new one under new observation IDs, so that none of
    its files is at the site yet) in the DataLake, and both runs' arguments."""
    bed = Testbed(Layout(default_dir()))
    if not bed.status():
        raise RuntimeError("the local DataLake is not fully up; run `lofar-datalake testbed up`")
    if fresh:
        from ..simulate.observation import SimulationParams, simulate

        obsid = 800000 + int(time.time()) % 100000 * 2
        data = job.out / "data"
        print(f"==> simulating a new observation L{obsid}/L{obsid + 1} into {data}", flush=True)
        simulate(SimulationParams(seed=1, sky_seed=1, calibrator_obsid=obsid,
                                  target_obsid=obsid + 1), data)
    else:
        data = DEMO_DIR / "data"
        simulate_demo_data(data)
    print("==> the demo observation in the DataLake (SITE_B_DISK, SITE_C_DAV)", flush=True)
    seed(bed, data)
    job.out.mkdir(parents=True, exist_ok=True)
    # Rucio files are immutable: each comparison stores its products under a new name.
    stamp = time.strftime("%Y%m%dT%H%M%S")
    config = write_demo_config(job.out, data, products=f"products/compare-{stamp}")
    os.environ.setdefault("X509_USER_PROXY", str(bed.pki.proxy))
    job.profile = job.profile or ROOT / "profiles" / "local"
    job.snakemake_args = [
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(config),
        *testbed_args(bed),
        *job.snakemake_args,
    ]
    job.description = {
        "observation": "simulated demo observation (calibrator + target beam)",
        "data": str(data),
    }

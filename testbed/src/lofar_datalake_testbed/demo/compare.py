"""`lofar-datalake compare --demo`: the comparison on the demo observation and the local
DataLake (`lofar-datalake testbed up`), with the embedded default site's profile."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lofar_datalake.compare.at_site import make_readable, site_of

from ..layout import Layout, default_dir
from ..orchestrator import Testbed
from ..seed import seed
from .pipeline import (
    DEMO_DIR,
    ROOT,
    simulate_demo_data,
    testbed_args,
    write_demo_config,
)

IMAGE_CACHE = Path(os.environ.get("LOFAR_DATALAKE_IMAGE_CACHE", "/var/cache/lofar-datalake"))


def _name_stage_images(config: Path) -> None:
    """The stage images built from the recipes (once; cached by recipe digest), named in the
    run's config: a site profile with Apptainer runs every job in them."""
    from lofar_datalake.containers import build_all

    print(f"==> stage images (built once into {IMAGE_CACHE / 'images'}, ~3 min)", flush=True)
    images = build_all(IMAGE_CACHE / "images", cache=IMAGE_CACHE / "debootstrap",
                       say=lambda m: print(f"    {m}", flush=True))
    values = yaml.safe_load(config.read_text())
    values["containers"] = {family: str(path) for family, path in images.items()}
    config.write_text(yaml.safe_dump(values, sort_keys=False))


if TYPE_CHECKING:
    from lofar_datalake.compare.command import Comparison


def prepare_demo(job: Comparison, fresh: bool = False) -> None:
    """The demo observation (or, `fresh`, a new one under new observation IDs, so that none of
    its files is at the site yet) in the DataLake, and both runs' arguments."""
    bed = Testbed(Layout(default_dir()))
    if not bed.status():
        raise RuntimeError("the local DataLake is not fully up; run `lofar-datalake testbed up`")
    site = site_of(job.profile)
    if fresh:
        from lofar_datalake.simulate.observation import SimulationParams, simulate

        obsid = 800000 + int(time.time()) % 100000 * 2
        # At a site, where its jobs can read the sheet and the sky model.
        data = (site.site.shared_area() / job.out.name if site else job.out) / "data"
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
    for key, value in bed.client_env().items():
        os.environ.setdefault(key, value)
    job.profile = job.profile or ROOT / "profiles" / "local"
    if site is not None and site.uses_containers():
        _name_stage_images(config)
    if site is not None:
        make_readable(data)
        job.binds.append(data.resolve())
    job.snakemake_args = [
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(config),
        # A site's access point has its own client setup (the site's environment).
        *(testbed_args(bed) if site is None else []),
        *job.snakemake_args,
    ]
    job.description = {
        **({"site": site.kind} if site else {}),
        "observation": "simulated demo observation (calibrator + target beam)",
        "data": str(data),
    }

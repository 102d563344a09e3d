"""Site tests run the workflow through a real batch system with a site profile (minutes), and
in real containers: stage images built from workflow/containers/*.def (debootstrap + chroot,
lofar_datalake.container_sandbox), run by Snakemake's own Apptainer code through the test
launcher (lofar_datalake_testbed/launchers/apptainer, Podman): Apptainer cannot be installed
here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import site_run  # shared by the site tests (same test directory)

from lofar_datalake import containers
from lofar_datalake_testbed import htcondor_chroot, launchers, sites
from lofar_datalake_testbed.slurm import SYSTEM_CONF

LAUNCHERS = Path(launchers.__file__).parent
# Images are rebuilt when their recipe changes (its digest is in the name); a fresh machine
# (CI) builds all four, ~2-3 min with one debootstrap shared by all.
IMAGE_CACHE = Path(os.environ.get("LOFAR_DATALAKE_IMAGE_CACHE", "/var/cache/lofar-datalake"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sites: runs the workflow through a batch system with a site profile"
    )


IMAGE_PROGRAMS = ("debootstrap", "chroot", "podman", "runc")


def _build_missing_images(log: Path) -> dict[str, Path]:
    with log.open("a") as fh:
        return containers.build_all(
            IMAGE_CACHE / "images",
            cache=IMAGE_CACHE / "debootstrap",
            say=lambda message: print(message, file=fh, flush=True),
        )


_BUILD: dict[str, Future[dict[str, Path]]] = {}


def _can_build() -> bool:
    return os.geteuid() == 0 and all(shutil.which(p) for p in IMAGE_PROGRAMS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start building the images while the tests before the site tests run: the build (~3
    min on a new machine) is mostly downloads and unpacking, which share the 2 cores well."""
    wanted = any("stage_images" in getattr(item, "fixturenames", ()) for item in items)
    if wanted and _can_build() and "images" not in _BUILD:
        log = IMAGE_CACHE / "image-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-build")
        _BUILD["images"] = pool.submit(_build_missing_images, log)
        pool.shutdown(wait=False)


@pytest.fixture(scope="session")
def stage_images() -> Iterator[dict[str, Path]]:
    """Every stage family's image as a sandbox directory, built from its recipe."""
    site_run.require(IMAGE_PROGRAMS, "building and running stage images")
    build = _BUILD.get("images")
    log = IMAGE_CACHE / "image-build.log"
    try:
        images = build.result() if build else _build_missing_images(log)
    except Exception as exc:
        tail = log.read_text()[-3000:] if log.is_file() else ""
        pytest.fail(f"building the stage images failed: {exc}\n{tail}")
    yield images


@pytest.fixture
def launcher_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment in which `apptainer` is the Podman test launcher, logging every exec of
    this test."""
    log = tmp_path_factory.mktemp("launcher") / "exec.jsonl"
    return {
        "PATH": f"{LAUNCHERS}:{os.environ['PATH']}",
        "APPTAINER_TEST_LAUNCHER_LOG": str(log),
        "CONTAINERS_CONF": str(LAUNCHERS / "containers.conf"),
    }


def _testbed_site(bed: Any, kind: str) -> Iterator[Any]:
    """A compute site of the session's testbed, up for one module and stopped after it."""
    bed.up([kind])
    site = sites.compute_site(bed.layout, kind)
    try:
        yield site
    finally:
        site.down()
        sites.remember(bed.layout, [k for k in sites.started_kinds(bed.layout) if k != kind])


@pytest.fixture(scope="module")
def testbed_pool(testbed_session: Any) -> Iterator[Any]:
    """The testbed's HTCondor pool (`testbed up --sites htcondor`)."""
    needed = ("chroot", "mount", "umount")
    if not htcondor_chroot.is_complete(htcondor_chroot.chroot_path()):
        needed += ("debootstrap",)
    site_run.require(needed, "the testbed's HTCondor pool")
    yield from _testbed_site(testbed_session, "htcondor")


@pytest.fixture(scope="module")
def testbed_cluster(testbed_session: Any) -> Iterator[Any]:
    """The testbed's Slurm cluster (`testbed up --sites slurm`)."""
    site_run.require(("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "nsenter",
                      "ip"), "the testbed's Slurm site")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        pytest.skip(f"{SYSTEM_CONF} is a real Slurm installation's; the test cluster needs it")
    yield from _testbed_site(testbed_session, "slurm")

"""`testbed seed` spreads an observation over the RSEs, idempotently, and refuses to overwrite."""

from __future__ import annotations

import os
import time

import pytest

from datalake_core.rucio_adapter import DataLakeError, Did
from lofar_datalake_testbed.seed import seed

pytestmark = pytest.mark.integration


def test_seed_spreads_archives_and_is_idempotent(testbed, rucio, tmp_path):
    obsid = f"L9{time.time_ns() % 10**6:06d}"
    for sb in range(3):
        (tmp_path / f"{obsid}_SB{sb:03d}_uv.MS.tar").write_bytes(os.urandom(50_000 + sb))
    placed = seed(testbed, tmp_path, rses=("SITE_B_DISK", "SITE_C_DAV"))
    assert [rse for _, rse in placed] == ["SITE_B_DISK", "SITE_C_DAV", "SITE_B_DISK"]
    replicas = rucio.list_replicas([did for did, _ in placed])
    assert {r["name"]: sorted(r["states"]) for r in replicas} == {
        did.name: [rse] for did, rse in placed}
    assert seed(testbed, tmp_path, rses=("SITE_B_DISK", "SITE_C_DAV")) == placed

    (tmp_path / f"{obsid}_SB000_uv.MS.tar").write_bytes(b"other content")
    with pytest.raises(DataLakeError, match="immutable"):
        seed(testbed, tmp_path)
    assert Did("lofar", f"{obsid}_SB000_uv.MS.tar") in [d for d, _ in placed]

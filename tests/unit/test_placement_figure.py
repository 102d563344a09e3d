"""The picture of a plan names every site, every subband with where it is read from, the
processing site and what moves to it."""

from __future__ import annotations

from pathlib import Path

from lofar_datalake.placement.figure import draw
from lofar_datalake.placement.plan import Plan, Prediction, SitePlan, SubbandPlan


def _plan() -> Plan:
    subbands = (SubbandPlan("L700001:000", "lofar:a", "SITE_A", "SITE_A_DISK", 10),
                SubbandPlan("L700001:001", "lofar:b", "SITE_A", "SITE_C_DAV", 10),
                SubbandPlan("L700001:002", "lofar:c", "SITE_B", "SITE_B_DISK", 10))
    sites = (SitePlan("SITE_A", "profiles/local", "SITE_A_DISK", ("L700001:000", "L700001:001"),
                      True),
             SitePlan("SITE_B", "profiles/local-site-b", "SITE_B_DISK", ("L700001:002",), False),
             SitePlan("SITE_C", "profiles/local-site-c", "SITE_C_DAV", (), False))
    return Plan(sites, subbands, Prediction(10, 3, 42.0, 1.0), optimal=False)


def test_the_picture_shows_sites_subbands_their_sources_and_what_moves(tmp_path: Path) -> None:
    out = tmp_path / "plan.png"
    texts = draw(_plan(), out)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "SITE_A\nSITE_A_DISK" in texts and "SITE_C\nSITE_C_DAV" in texts
    assert "calibration + imaging" in texts
    assert "L700001:000" in texts  # read where it is
    assert "L700001:001 \u2190 SITE_C_DAV" in texts  # copied from another site's RSE
    assert "SITE_B: 1 preprocessed subbands \u2192 SITE_A" in texts
    assert any("makespan 42 s (not proven optimal)" in t for t in texts)

"""Plans that cannot be made say which constraint fails, for which subband or site, by how much."""

from __future__ import annotations

import pytest

from lofar_datalake.placement.infeasible import PlanInfeasible
from lofar_datalake.placement.model import GIB, Problem, Site, Subband, Weights
from lofar_datalake.placement.planner import solve

A, B, C, D = "SITE_A_DISK", "SITE_B_DISK", "SITE_C_DAV", "SITE_D_DAV"


def site(name: str, rse: str, reads: tuple[str, ...] = (), disk_gib: float | None = None) -> Site:
    return Site(name, f"profiles/{name}", rse, 2, reads,
                None if disk_gib is None else int(disk_gib * GIB))


def subband(i: int, *replicas: str) -> Subband:
    did = f"lofar:L700001_SB{i:03d}_uv.MS.tar"
    return Subband(f"L700001:{i:03d}", GIB, GIB // 4, replicas, did)


def problem(subbands: list[Subband], sites: list[Site], keep: tuple[str, ...] = ()) -> Problem:
    return Problem(tuple(subbands), tuple(sites), 20.0, 60.0, Weights(), keep_at_site=keep)


def message(p: Problem) -> str:
    with pytest.raises(PlanInfeasible) as caught:
        solve(p)
    return str(caught.value)


def test_a_subband_no_site_may_read_is_named_with_its_replicas_and_what_each_site_reads() -> None:
    text = message(problem([subband(0, A), subband(1, D)],
                           [site("SITE_A", A, reads=(B,)), site("SITE_B", B)]))
    assert "no site may read subband L700001:001" in text
    assert "its AVAILABLE replicas are on SITE_D_DAV" in text
    assert "SITE_A reads SITE_A_DISK, SITE_B_DISK" in text
    assert "SITE_B reads SITE_B_DISK" in text


def test_a_subband_without_available_replica_is_named() -> None:
    text = message(problem([subband(3)], [site("SITE_A", A)]))
    assert text == ("subband L700001:003 (lofar:L700001_SB003_uv.MS.tar) has no AVAILABLE "
                    "replica on any RSE")


def test_data_kept_at_an_rse_no_site_owns_is_an_error() -> None:
    text = message(problem([subband(0, A)], [site("SITE_A", A)], keep=(C,)))
    assert "keep_at_site names SITE_C_DAV, the RSE of no site" in text
    assert "SITE_A_DISK" in text


def test_a_site_too_small_for_the_data_that_must_stay_there_says_how_much() -> None:
    text = message(problem([subband(0, C), subband(1, C)],
                           [site("SITE_A", A, reads=(C,)), site("SITE_C", C, disk_gib=2.0)],
                           keep=(C,)))
    assert text == ("site SITE_C: 2 subbands must stay at SITE_C_DAV (keep_at_site), 2.50 GiB "
                    "raw and preprocessed, but its disk_gib allows 2.00 GiB")


def test_too_little_disk_in_all_gives_both_totals() -> None:
    text = message(problem([subband(i, A) for i in range(4)],
                           [site("SITE_A", A, disk_gib=2.0),
                            site("SITE_B", B, (A,), disk_gib=1.0)]))
    assert text.startswith("disk capacity: the 4 subbands need at least 5.00 GiB")
    assert "hold 3.00 GiB in all (SITE_A 2.00 GiB, SITE_B 1.00 GiB)" in text


def test_a_site_whose_disk_cannot_hold_what_only_it_may_read_names_both_ways_out() -> None:
    # Only A reads A_DISK, where all 3 subbands are (3.75 GiB with products); A holds 2 GiB.
    text = message(problem([subband(i, A) for i in range(3)],
                           [site("SITE_A", A, disk_gib=2.0), site("SITE_B", B)]))
    assert text.startswith("no placement meets every constraint; relaxing any one of these")
    assert ("- disk capacity cannot be met: without it the best placement needs 3.75 GiB at "
            "SITE_A, whose disk_gib allows 2.00 GiB") in text
    assert ("- readable RSEs cannot be met: without it the best placement needs subband "
            "L700001:00") in text
    assert "(replicas on SITE_A_DISK) at SITE_B, which reads SITE_B_DISK" in text


def test_kept_data_that_fits_no_kept_site_names_keep_at_site_and_the_disks() -> None:
    # Each subband is on C and D, both kept; C and D hold 1.5 GiB each: one subband each, the
    # third nowhere. A (no disk limit, reads both) could take it were it not kept.
    text = message(problem([subband(i, C, D) for i in range(3)],
                           [site("SITE_A", A, (C, D)), site("SITE_C", C, disk_gib=1.5),
                            site("SITE_D", D, disk_gib=1.5)], keep=(C, D)))
    assert "- keep_at_site cannot be met: without it the best placement needs subband" in text
    assert "kept at SITE_C_DAV, SITE_D_DAV, at SITE_A" in text
    assert "- disk capacity cannot be met: without it the best placement needs 3.75 GiB at" in text
    assert "whose disk_gib allows 1.50 GiB" in text


def test_a_single_family_at_fault_is_said_on_one_line() -> None:
    # 3 subbands at A, 1.25 GiB each with products; A and B hold 2 GiB each (4 in all, so the
    # total check passes), but no split fits: one at A leaves 2.5 GiB for B, two at A 2.5 at A.
    # Who may read what does not matter; without disks all stays at A, 3.75 GiB.
    text = message(problem([subband(i, A) for i in range(3)],
                           [site("SITE_A", A, disk_gib=2.0),
                            site("SITE_B", B, (A,), disk_gib=2.0)]))
    assert text == ("no placement meets every constraint: disk capacity cannot be met: without "
                    "it the best placement needs 3.75 GiB at SITE_A, whose disk_gib allows "
                    "2.00 GiB")

"""The sites file is read strictly, and stage costs come from earlier runs' benchmark records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lofar_datalake.placement import sites
from lofar_datalake.placement.model import GIB, Overhead, SharedCores
from lofar_datalake.placement.sites import SitesFileError

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"sites": {"SITE_A": {"profile": "profiles/local", "rse": "SITE_A_DISK", "cores": 2}},
           "stage_seconds": {"preprocess": 20.0, "process": 60.0}}


def error(data: object) -> str:
    with pytest.raises(SitesFileError) as caught:
        sites.parse(data)
    return str(caught.value)


def with_site(**fields: object) -> dict[str, object]:
    site = {**MINIMAL["sites"]["SITE_A"], **fields}
    return {**MINIMAL, "sites": {"SITE_A": site}}


def test_the_example_file_describes_the_testbeds_three_sites() -> None:
    loaded = sites.load(ROOT / "config" / "sites.example.yaml")
    assert [(s.name, s.profile, s.rse) for s in loaded.sites] == [
        ("SITE_A", "profiles/local", "SITE_A_DISK"),
        ("SITE_B", "profiles/local-site-b", "SITE_B_DISK"),
        ("SITE_C", "profiles/local-site-c", "SITE_C_DAV")]
    assert loaded.sites[0].disk_bytes == 50 * GIB
    assert loaded.sites[0].inbound_bytes_s == 200 * 1024**2
    assert loaded.sites[2].disk_bytes is None
    assert loaded.shared == (SharedCores("this-machine", 2, ("SITE_A", "SITE_B", "SITE_C")),)


def test_shared_cores_name_a_pool_and_its_sites() -> None:
    two = {**MINIMAL, "sites": {**MINIMAL["sites"], "SITE_B": {
        "profile": "profiles/local-site-b", "rse": "SITE_B_DISK", "cores": 2}}}
    loaded = sites.parse({**two, "shared_cores": {"host": {"cores": 2,
                                                           "sites": ["SITE_A", "SITE_B"]}}})
    assert loaded.shared == (SharedCores("host", 2, ("SITE_A", "SITE_B")),)
    assert error({**two, "shared_cores": {"host": {"cores": 2, "sites": ["SITE_X"]}}}) == (
        "shared_cores.host.sites: SITE_X is not a site of the file (its sites: SITE_A, SITE_B)")
    assert error({**two, "shared_cores": {"host": {"cores": 0, "sites": ["SITE_A"]}}}) == (
        "shared_cores.host.cores: must be a whole number of at least 1, got 0")
    assert error({**two, "shared_cores": {"host": {"sites": []}}}) == (
        "shared_cores.host: missing cores")


def test_a_minimal_file_gets_the_documented_defaults() -> None:
    loaded = sites.parse(MINIMAL)
    assert loaded.overhead == Overhead(30.0, 30.0)
    assert (loaded.weights.per_gib_moved, loaded.weights.per_second) == (1.0, 0.01)
    assert loaded.preprocessed_fraction == 0.25
    assert loaded.time_limit_s == 30.0
    assert loaded.sites[0].reads == () and loaded.keep_at_site == ()


def test_an_unknown_key_is_an_error_naming_it_and_the_known_ones() -> None:
    text = error(with_site(dsik_gib=10))
    assert text.startswith("sites.SITE_A: unknown key dsik_gib (known: cores, disk_gib,")
    assert error({**MINIMAL, "weight": {}}).startswith("the file: unknown key weight")


def test_a_missing_key_is_named() -> None:
    site = {k: v for k, v in MINIMAL["sites"]["SITE_A"].items() if k != "cores"}
    assert error({**MINIMAL, "sites": {"SITE_A": site}}) == "sites.SITE_A: missing cores"
    assert error({"sites": MINIMAL["sites"]}) == "the file: missing stage_seconds"


@pytest.mark.parametrize(("data", "expected"), [
    (with_site(cores="two"), "sites.SITE_A.cores: must be a whole number of at least 1, got 'two'"),
    (with_site(cores=0), "sites.SITE_A.cores: must be a whole number of at least 1, got 0"),
    (with_site(disk_gib=0), "sites.SITE_A.disk_gib: must be a positive number, got 0"),
    (with_site(reads="SITE_B_DISK"), "sites.SITE_A.reads: must be a list, got 'SITE_B_DISK'"),
    (with_site(rse=""), "sites.SITE_A.rse: must be a non-empty string, got ''"),
    ({**MINIMAL, "weights": {"per_second": -1}},
     "weights.per_second: must be a number of at least 0, got -1"),
    ({**MINIMAL, "preprocessed_fraction": 1.5},
     "preprocessed_fraction: must be at most 1, got 1.5"),
    ({**MINIMAL, "keep_at_site": [3]}, "keep_at_site[0]: must be a non-empty string, got 3"),
    ({**MINIMAL, "run_overhead_s": {"process": "slow"}},
     "run_overhead_s.process: must be a number of at least 0, got 'slow'"),
    ({**MINIMAL, "run_overhead_s": {"stage_in": 3}},
     "run_overhead_s: unknown key stage_in (known: preprocess, process)"),
    ({**MINIMAL, "sites": {}}, "sites: lists no site"),
    ([], "the file: must be a mapping, got list"),
])
def test_a_wrong_value_names_its_key_and_what_it_must_be(data: object, expected: str) -> None:
    assert error(data) == expected


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(with_site(cores=-2)))
    with pytest.raises(SitesFileError, match=rf"^sites file {path}: sites.SITE_A.cores"):
        sites.load(path)
    path.write_text("sites: [unclosed")
    with pytest.raises(SitesFileError, match=rf"^sites file {path}: not YAML"):
        sites.load(path)


def record(run: Path, rule: str, name: str, *seconds: float) -> None:
    path = run / "benchmarks" / rule / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{s}\t0:00:01\t98.6\n" for s in seconds)
    path.write_text("s\th:m:s\tmax_rss\n" + rows)


def test_stage_costs_are_the_median_of_each_rule_summed_per_stage(tmp_path: Path) -> None:
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    for i, (fetch, flag, avg) in enumerate([(1.0, 4.0, 2.0), (3.0, 6.0, 2.0), (100.0, 5.0, 2.0)]):
        run = run1 if i < 2 else run2
        record(run, "fetch", f"L1_SB00{i}", fetch)
        record(run, "flag", f"L1_SB00{i}", flag)
        record(run, "average", f"L1_SB00{i}", avg)
    record(run1, "calibrate", "L0_SB000", 7.0)
    record(run1, "apply_calibration", "L1_SB000", 1.0, 2.0)  # a record with two repeats
    record(run1, "image", "L1", 30.0)
    record(run2, "find_sources", "L1", 5.0)
    record(run1, "store", "L1_image.fits", 999.0)  # per product: part of the run's overhead
    costs = sites.stage_costs(sites.parse(MINIMAL), [run1, run2 / "benchmarks"])
    # fetch median(1, 3, 100) = 3, flag median(4, 6, 5) = 5, average 2.
    assert costs.preprocess_s == 10.0
    assert costs.per_subband_s == 2.0  # median of calibrate's and apply_calibration's (7, 1, 2)
    assert costs.per_target_s == 35.0
    assert costs.process_s(subbands=4, targets=1) == 4 * 2.0 + 35.0
    assert costs.source.startswith("benchmark records of 2 run(s) (apply_calibration, average")
    assert "store" not in costs.source


def test_a_split_chains_packing_and_qa_count_in_their_stage(tmp_path: Path) -> None:
    for rule, seconds in [("fetch", 1.0), ("pack_preprocessed", 2.0),
                          ("store_preprocessed", 3.0), ("qa_flags", 4.0),
                          ("calibrate", 5.0), ("unpack_preprocessed", 6.0), ("qa_gains", 7.0),
                          ("image", 8.0), ("qa_sources", 9.0)]:
        record(tmp_path, rule, "L1_SB000", seconds)
    costs = sites.stage_costs(sites.parse(MINIMAL), [tmp_path])
    assert (costs.preprocess_s, costs.per_subband_s, costs.per_target_s) == (10.0, 18.0, 17.0)


def test_without_records_the_files_stage_seconds_are_used() -> None:
    costs = sites.stage_costs(sites.parse(MINIMAL), [])
    assert (costs.preprocess_s, costs.process_s(subbands=4, targets=2)) == (20.0, 120.0)
    assert costs.source == "stage_seconds"


def test_a_stage_without_records_falls_back_alone_and_says_so(tmp_path: Path) -> None:
    record(tmp_path, "fetch", "L1_SB000", 4.0)
    costs = sites.stage_costs(sites.parse(MINIMAL), [tmp_path])
    assert costs.preprocess_s == 4.0
    assert costs.process_s(subbands=3, targets=1) == 60.0
    assert costs.source.endswith("(fetch); process from stage_seconds")


def test_a_record_without_wall_seconds_or_a_run_without_records_is_named(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks" / "flag" / "L1_SB000.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("h:m:s\n0:00:01\n")
    with pytest.raises(ValueError, match=rf"benchmark record {path}: no wall seconds in column"):
        sites.read_benchmarks([tmp_path])
    with pytest.raises(FileNotFoundError, match="no benchmarks/ directory"):
        sites.read_benchmarks([tmp_path / "elsewhere"])

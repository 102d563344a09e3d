"""The recall queue with a fake Rucio: which files are recalled, in what order, within the window,
rules reused and released, failures named. The real recall is tested against the testbed
(tests/integration/test_tape_recall_plugin.py)."""

from __future__ import annotations

import logging

import pytest

from datalake_core.errors import DataLakeError, StagingError
from datalake_core.resolver import FileInfo, Replica
from datalake_core.rucio_adapter import Did
from datalake_core.settings import ProviderConfig, StagePolicy
from datalake_core.tape_recall import Recaller

log = logging.getLogger("test")


class FakeRucio:
    def __init__(self, existing: dict[Did, dict] | None = None) -> None:
        self.requests: list[list[Did]] = []
        self.deleted: list[str] = []
        self.existing = existing or {}
        self.stuck: dict[Did, str] = {}
        self.expect = ("STAGE", 7200)  # where recall rules go, with what lifetime

    def expand_rse_expression(self, expression: str) -> list[str]:
        raise DataLakeError("RSE expression 'staging_required=True': RSE Expression resulted "
                            "in an empty set.")

    def rse_attributes(self, rse: str) -> dict:
        return {"staging_buffer": "STAGE"} if rse == "TAPE" else {}

    def account_rules(self, rse: str) -> dict[Did, dict]:
        return self.existing

    def add_rules(self, dids, rse, lifetime=None, comment=None) -> list[str]:
        assert (rse, lifetime) == self.expect
        self.requests.append(list(dids))
        return [f"rule-{d.name}" for d in dids]

    def stuck_rules(self, rse: str) -> dict[Did, str]:
        return self.stuck

    def delete_rule(self, rule: str) -> None:
        self.deleted.append(rule)


class Catalogue:
    def __init__(self, infos: list[FileInfo]) -> None:
        self.infos = {i.did: i for i in infos}

    def get(self, did: Did) -> FileInfo | None:
        return self.infos.get(did)

    def refresh(self, dids) -> None:
        pass

    def bring_online(self, did: Did, rse: str = "STAGE") -> None:
        info = self.infos[did]
        self.infos[did] = FileInfo(did, info.bytes, None, None, 0.0, (
            *info.replicas, Replica(rse, "AVAILABLE", ())))


def _on_tape(n: int, size: int = 10) -> list[FileInfo]:
    return [FileInfo(Did("lofar", f"SB{i:03d}"), size, None, None, 0.0,
                     (Replica("TAPE", "AVAILABLE", ("https://tape/x",), "TAPE"),))
            for i in range(n)]


def _recaller(infos, rucio, **cfg) -> tuple[Recaller, Catalogue]:
    catalogue = Catalogue(infos)
    config = ProviderConfig(recall_lifetime=7200, **cfg)
    recaller = Recaller(config, catalogue, lambda: rucio, log)  # type: ignore[arg-type]
    recaller._wake = lambda: None  # type: ignore[method-assign]  # driven by hand below
    return recaller, catalogue


def test_only_files_whose_replicas_are_all_on_tape_are_recalled() -> None:
    disk_too = FileInfo(Did("lofar", "both"), 1, None, None, 0.0, (
        Replica("TAPE", "AVAILABLE", ("https://tape/b",), "TAPE"),
        Replica("DISK", "AVAILABLE", ("https://disk/b",))))
    recaller, _ = _recaller([], FakeRucio())
    assert recaller.tape_of(_on_tape(1)[0]) == "TAPE"
    assert recaller.tape_of(disk_too) is None


def test_files_asked_for_go_first_and_the_window_holds() -> None:
    infos = _on_tape(6)
    rucio = FakeRucio()
    recaller, catalogue = _recaller(infos, rucio, recall_files_per_request=2,
                                    recall_files_in_flight=3)
    recaller.plan(infos)
    futures = recaller.demand([infos[4].did])
    recaller._submit()
    assert [[d.name for d in r] for r in rucio.requests] == [["SB004", "SB000"], ["SB001"]]
    recaller._submit()
    assert len(rucio.requests) == 2, "three in flight: nothing more until one is online"
    catalogue.bring_online(infos[4].did)
    recaller._look()
    assert futures[infos[4].did].done() and futures[infos[4].did].result() is None
    recaller._submit()
    assert [d.name for d in rucio.requests[-1]] == ["SB002"]


def test_rules_this_account_has_are_reused_and_released_once_local() -> None:
    infos = _on_tape(2)
    rucio = FakeRucio(existing={infos[0].did: {"id": "old-rule"}})
    recaller, catalogue = _recaller(infos, rucio)
    recaller.plan(infos)
    recaller._submit()
    assert rucio.requests == [[infos[1].did]]
    assert recaller.rules_reused == ["old-rule"]
    catalogue.bring_online(infos[0].did)
    recaller._look()
    recaller.release(catalogue.get(infos[0].did), "STAGE", linked=True)
    assert rucio.deleted == [], "a symlink to the staging area's copy keeps its rule"
    recaller.release(catalogue.get(infos[0].did), "STAGE", linked=False)
    assert rucio.deleted == ["old-rule"]


def test_with_a_policy_staging_to_the_site_files_are_recalled_to_its_rse_and_kept_there(
) -> None:
    # A transfer from tape to the site: FTS releases the pin once copied, and the site's copy
    # stays under the rule (the rule_lifetime of its other staged inputs), not deleted.
    infos = _on_tape(2)
    rucio = FakeRucio()
    rucio.expect = ("SITE", 3600)
    recaller, catalogue = _recaller(infos, rucio, stage_policy=StagePolicy.RULE, site_rse="SITE",
                                    rule_lifetime=3600)
    recaller.plan(infos)
    recaller._submit()
    assert rucio.requests == [[i.did for i in infos]]
    catalogue.bring_online(infos[0].did, "SITE")
    recaller._look()
    futures = recaller.demand([i.did for i in infos])
    assert futures[infos[0].did].done() and not futures[infos[1].did].done()
    recaller.release(catalogue.get(infos[0].did), "SITE", linked=False)
    assert rucio.deleted == []


@pytest.mark.parametrize(("policy", "site"), [("download", "SITE"), ("rule", "SITE|OTHER"),
                                              ("fts", None)])
def test_without_one_site_rse_to_stage_to_files_are_recalled_to_the_staging_area(
        policy: str, site: str | None) -> None:
    infos = _on_tape(1)
    rucio = FakeRucio()
    recaller, _ = _recaller(infos, rucio, stage_policy=StagePolicy(policy), site_rse=site)
    recaller.plan(infos)
    recaller._submit()
    assert rucio.requests == [[infos[0].did]]


def test_the_rule_of_an_earlier_run_goes_when_its_file_is_read_from_the_staging_area() -> None:
    [info] = _on_tape(1)
    rucio = FakeRucio(existing={info.did: {"id": "killed-runs-rule"}})
    recaller, catalogue = _recaller([info], rucio)
    catalogue.bring_online(info.did)  # online already: not recalled by this run
    assert recaller.tape_of(catalogue.get(info.did)) is None
    recaller.release(catalogue.get(info.did), "DISK", linked=False)
    assert rucio.deleted == []
    recaller.release(catalogue.get(info.did), "STAGE", linked=False)
    assert rucio.deleted == ["killed-runs-rule"]


def test_a_failed_recall_names_the_file_the_tape_rse_and_the_reason(caplog) -> None:
    infos = _on_tape(2)
    rucio = FakeRucio()
    recaller, _ = _recaller(infos, rucio)
    recaller.plan(infos)
    futures = recaller.demand([i.did for i in infos])
    recaller._submit()
    rucio.stuck[infos[1].did] = "SOURCE [2] BRINGONLINE failed for https://tape/x: file lost"
    with caplog.at_level(logging.ERROR):
        recaller._look()
    with pytest.raises(StagingError) as failed:
        futures[infos[1].did].result()
    assert str(failed.value) == ("lofar:SB001: recall from tape RSE TAPE to STAGE failed: "
                                 "SOURCE [2] BRINGONLINE failed for https://tape/x: file lost")
    assert str(failed.value) in caplog.text
    assert not futures[infos[0].did].done()


def test_files_not_requested_yet_follow_the_order_jobs_will_start_in() -> None:
    infos = _on_tape(5)
    rucio = FakeRucio()
    recaller, _ = _recaller(infos, rucio, recall_files_in_flight=1)
    recaller.plan(infos)
    recaller._submit()
    recaller.reorder([infos[3].did, infos[1].did])
    assert [d.name for d in recaller._queue] == ["SB003", "SB001", "SB002", "SB004"]

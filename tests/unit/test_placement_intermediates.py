"""Once a chain has succeeded, its preprocessed files are released: this account's rules on them
are deleted, other accounts' are left alone."""

from __future__ import annotations

from datalake_core.rucio_adapter import Did
from lofar_datalake.placement.intermediates import release


class FakeRules:
    account = "pipeline"

    def __init__(self, rules: dict[Did, list[dict]]) -> None:
        self.rules = rules
        self.deleted: list[str] = []

    def list_did_rules(self, did: Did) -> list[dict]:
        return self.rules.get(did, [])

    def delete_rule(self, rule_id: str) -> None:
        self.deleted.append(rule_id)


def test_this_accounts_rules_on_the_preprocessed_files_are_deleted_and_no_others() -> None:
    a = Did("lofar", "chain/preprocessed/L1_SB000.MS.tar")
    b = Did("lofar", "chain/preprocessed/L1_SB001.MS.tar")
    rucio = FakeRules({
        a: [{"id": "keep-at-site", "account": "pipeline"},
            {"id": "someone-elses", "account": "root"}],
        b: [{"id": "copy-at-a", "account": "pipeline"}],
    })
    assert release(rucio, [str(a), str(b)]) == ["keep-at-site", "copy-at-a"]
    assert rucio.deleted == ["keep-at-site", "copy-at-a"]

"""Once a chain has succeeded, its preprocessed files get a lifetime: this account's rules on
them only, never made to live longer than they would."""

from __future__ import annotations

import datetime as dt

from datalake_core.rucio_adapter import Did
from lofar_datalake.placement.intermediates import limit_lifetimes

NOW = dt.datetime(2026, 12, 3, 12, 0, 0)


class FakeRules:
    account = "pipeline"

    def __init__(self, rules: dict[Did, list[dict]]) -> None:
        self.rules = rules
        self.set: list[tuple[str, int]] = []

    def list_did_rules(self, did: Did) -> list[dict]:
        return self.rules.get(did, [])

    def set_rule_lifetime(self, rule_id: str, seconds: int) -> None:
        self.set.append((rule_id, seconds))


def test_this_accounts_rules_without_an_earlier_expiry_get_the_lifetime() -> None:
    a, b = Did("lofar", "chain/preprocessed/L1_SB000.MS.tar"), Did("lofar", "chain/p/L1_SB001")
    rucio = FakeRules({
        a: [{"id": "keep", "account": "pipeline", "expires_at": None},
            {"id": "someone-elses", "account": "root", "expires_at": None}],
        b: [{"id": "copy", "account": "pipeline", "expires_at": "Thu, 31 Dec 2026 00:00:00 UTC"},
            {"id": "sooner", "account": "pipeline",
             "expires_at": dt.datetime(2026, 12, 3, 13, 0, 0)}],
    })
    changed = limit_lifetimes(rucio, [str(a), str(b)], 86400, now=NOW)
    assert changed == ["keep", "copy"]
    assert rucio.set == [("keep", 86400), ("copy", 86400)]

"""The chain's preprocessed subbands, once they are no longer needed.

They are DataLake files only so that the processing site can read them: once its run has
succeeded, this account's rules on them get a lifetime (`run --plan --preprocessed-lifetime`,
a week by default), after which Rucio's judge-cleaner removes the rules and the reaper frees
the space; a rerun or a compare within that time still finds them. The storage plugin stores
every output of a run alike, with no lifetime for one output only, so the chain sets it. Only
rules this account owns are touched, and a rule already expiring sooner keeps its time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from datalake_core.rucio_adapter import Did

RUCIO_TIME = "%a, %d %b %Y %H:%M:%S UTC"


class Rules(Protocol):
    @property
    def account(self) -> str: ...

    def list_did_rules(self, did: Did) -> list[dict[str, Any]]: ...

    def set_rule_lifetime(self, rule_id: str, seconds: int) -> None: ...


def limit_lifetimes(rucio: Rules, dids: Iterable[str], seconds: int,
                    now: dt.datetime | None = None) -> list[str]:
    """Give this account's rules on `dids` (`scope:name`) `seconds` to live; the ids changed."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    deadline = now + dt.timedelta(seconds=seconds)
    changed = []
    for text in dids:
        scope, _, name = text.partition(":")
        for rule in rucio.list_did_rules(Did(scope, name)):
            if rule.get("account") != rucio.account or _expires(rule) <= deadline:
                continue
            rucio.set_rule_lifetime(str(rule["id"]), seconds)
            changed.append(str(rule["id"]))
    return changed


def _expires(rule: dict[str, Any]) -> dt.datetime:
    value = rule.get("expires_at")
    if value is None:
        return dt.datetime.max
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.strptime(str(value), RUCIO_TIME)

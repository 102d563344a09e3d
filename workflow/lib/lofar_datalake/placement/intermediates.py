"""The chain's preprocessed subbands, once they are no longer needed.

They are DataLake files only so that the processing site can read them: once its run has
succeeded, `run --plan` deletes this account's rules on them (unless `--keep-preprocessed`),
and Rucio removes them after its grace period (a rule its owner deletes expires within the
hour; then the judge-cleaner and the reaper free the space). Deleting is what the owner of a
rule may do: under Rucio's generic permission policy only an administrator may change a rule's
lifetime, and the storage plugin stores every output of a run alike, without a lifetime for
one output only. Rules of other accounts (copies someone else asked for) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from datalake_core.rucio_adapter import Did


class Rules(Protocol):
    @property
    def account(self) -> str: ...

    def list_did_rules(self, did: Did) -> list[dict[str, Any]]: ...

    def delete_rule(self, rule_id: str) -> None: ...


def release(rucio: Rules, dids: Iterable[str]) -> list[str]:
    """Delete this account's rules on `dids` (`scope:name`); the ids deleted."""
    deleted = []
    for text in dids:
        scope, _, name = text.partition(":")
        for rule in rucio.list_did_rules(Did(scope, name)):
            if rule.get("account") == rucio.account:
                rucio.delete_rule(str(rule["id"]))
                deleted.append(str(rule["id"]))
    return deleted

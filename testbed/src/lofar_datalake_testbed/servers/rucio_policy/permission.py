"""Who may do what in the testbed DataLake: Rucio's generic policy with three narrow additions
and one restriction.

- `add_replicas`: also an account with a quota (a local account limit above zero) on the RSE.
  The operator decides where an account may store by granting quota there; registering a file
  the account has just put on that RSE (an upload, or a copy made by the `fts` stage policy) is
  then allowed there and nowhere else. New DIDs still need the scope's owner (`add_dids`).
- `del_rule`: also the rule's own account (a pipeline removes the rules it made to stage inputs);
  another account's rules stay the operator's.
- `get_request_history_by_did`: also the owner of the file's scope (what Rucio moved of its own
  files, and how many bytes: `compare` accounts for a run's transfers with it).
- `attach_dids` with an RSE (which registers the files' replicas there as it attaches them, as
  Rucio's upload client and the plugin's outputs do): besides the generic condition (the
  dataset's scope owner), the account must be allowed `add_replicas` on that RSE; the generic
  policy checks nothing about the RSE there, which would let an account register replicas where
  it may not through `add_replicas`.

Everything else is the generic policy: adding RSEs, setting quotas, declaring replicas bad,
adding accounts, deleting others' rules stay with root and `admin` accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rucio.common.exception import RuleNotFound
from rucio.common.types import InternalScope
from rucio.core.account_limit import get_local_account_limit
from rucio.core.permission import generic
from rucio.core.rule import get_rule
from rucio.core.scope import is_scope_owner

if TYPE_CHECKING:
    from rucio.common.types import InternalAccount
    from sqlalchemy.orm import Session


def _has_quota_on(issuer: InternalAccount, rse_id: str, session: Session) -> bool:
    limit = get_local_account_limit(account=issuer, rse_ids=rse_id, session=session)
    return limit is not None and limit > 0


def perm_add_replicas(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> bool:
    if generic.perm_add_replicas(issuer, kwargs, session=session):
        return True
    return bool(kwargs.get("rse_id")) and _has_quota_on(issuer, kwargs["rse_id"], session)


def perm_attach_dids(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> bool:
    if not generic.perm_attach_dids(issuer, kwargs, session=session):
        return False
    attachment = kwargs.get("attachment") or {}
    if attachment.get("rse_id") is None:
        return True
    return perm_add_replicas(issuer, {"rse": attachment.get("rse"), "rse_id": attachment["rse_id"]},
                             session)


def perm_del_rule(issuer: InternalAccount, kwargs: dict[str, Any], session: Session) -> bool:
    if generic.perm_del_rule(issuer, kwargs, session=session):
        return True
    try:
        owner = get_rule(kwargs["rule_id"], session=session)["account"]
    except RuleNotFound:
        return False  # the gateway answers "rule not found" itself
    return bool(owner == issuer)


def perm_get_request_history_by_did(
    issuer: InternalAccount, kwargs: dict[str, Any], session: Session
) -> bool:
    if generic.perm_get_request_history_by_did(issuer, kwargs, session=session):
        return True
    scope = kwargs.get("scope")
    if isinstance(scope, str):
        scope = InternalScope(scope, vo=issuer.vo)
    return scope is not None and bool(is_scope_owner(scope=scope, account=issuer, session=session))


OVERRIDES = {
    "add_replicas": perm_add_replicas,
    "attach_dids": perm_attach_dids,
    "del_rule": perm_del_rule,
    "get_request_history_by_did": perm_get_request_history_by_did,
}


def has_permission(
    issuer: InternalAccount, action: str, kwargs: dict[str, Any], session: Session
) -> bool:
    check = OVERRIDES.get(action)
    if check is not None:
        return check(issuer, kwargs, session)
    return bool(generic.has_permission(issuer, action, kwargs, session=session))

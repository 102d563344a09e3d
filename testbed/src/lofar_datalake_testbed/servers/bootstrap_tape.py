"""The archive on tape in the catalogue: LTA_TAPE and its staging area LTA_STAGING.

Arranged as upstream Rucio stages (rucio 41, `core/transfer.py`, `transfertool/fts3.py`):

- `LTA_TAPE` has `rse_type` TAPE: its files are nearline (servers/tape.py). Its attribute
  `staging_buffer` names the RSE recalls go to.
- `LTA_STAGING` is a disk RSE with `staging_area` set, on the same storage (same endpoint,
  prefix and deterministic paths). A rule there, which must have a lifetime, makes STAGEIN
  requests; `conveyor-stager` submits each as a staging-only FTS job (source == destination,
  the tape URL) with `copy_pin_lifetime` = the rule's lifetime and `bring_online` 43200 s. Once
  FTS reports the file online, the replica on LTA_STAGING is AVAILABLE and the rule OK.
- Both speak https only: a tape endpoint offers no posix access that would bypass the recall.
- Distances let tape also be a (last-ranked) source of ordinary transfers to the disk sites,
  which FTS then stages first, and the staged copy a source like any disk.
"""

from __future__ import annotations

from typing import Any

from rucio.common.exception import Duplicate

from ..layout import LOOPBACK, SITES, STAGING_RSE, TAPE_PORT, TAPE_RSE, TAPE_SITE
from ..rucio_config import PIPELINE_ACCOUNT

ACCOUNTS = ("root", PIPELINE_ACCOUNT)


def _protocol(port: int) -> dict[str, Any]:
    ops = {"read": 1, "write": 1, "delete": 1}
    return {
        "scheme": "https",
        "hostname": LOOPBACK,
        "port": port,
        "prefix": "/",
        "impl": "rucio.rse.protocols.webdav.Default",
        "domains": {
            "lan": dict(ops),
            "wan": {**ops, "third_party_copy_read": 1, "third_party_copy_write": 1},
        },
        "extended_attributes": None,
    }


def _distance(client: Any, src: str, dst: str, distance: int) -> None:
    try:
        client.add_distance(src, dst, {"distance": distance})
    except Duplicate:
        client.update_distance(src, dst, {"distance": distance})


def create_tape_rses(client: Any, ports: dict[str, int], fts_url: str, limit: int) -> list[str]:
    existing = {r["rse"] for r in client.list_rses()}
    if TAPE_RSE not in existing:
        client.add_rse(TAPE_RSE, rse_type="TAPE", deterministic=True, volatile=False)
    if STAGING_RSE not in existing:
        client.add_rse(STAGING_RSE, deterministic=True, volatile=False, staging_area=True)
    client.update_rse(STAGING_RSE, {"staging_area": True})
    for rse in (TAPE_RSE, STAGING_RSE):
        try:
            client.add_protocol(rse, _protocol(ports[TAPE_PORT]))
        except Duplicate:
            pass
        for key, value in (("fts", fts_url), ("site", TAPE_SITE), ("verify_checksum", True)):
            client.add_rse_attribute(rse, key, value)
        for account in ACCOUNTS:
            client.set_local_account_limit(account, rse, limit)
    client.add_rse_attribute(TAPE_RSE, "staging_buffer", STAGING_RSE)
    _distance(client, TAPE_RSE, STAGING_RSE, 1)
    for site in SITES:
        _distance(client, TAPE_RSE, site.rse, 2)
        _distance(client, site.rse, TAPE_RSE, 2)
        _distance(client, STAGING_RSE, site.rse, 1)
    return [TAPE_RSE, STAGING_RSE]

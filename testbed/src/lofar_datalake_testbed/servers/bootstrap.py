"""Create the Rucio schema and the testbed's catalogue (accounts, scope, RSEs). Idempotent.

Run as `python -m lofar_datalake_testbed.servers.bootstrap {schema|catalog} --layout DIR` with
RUCIO_CONFIG naming the server config: Rucio reads its config once per process, so each step runs
in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..layout import LOOPBACK, SITES, XROOTD, Layout, Site
from ..rucio_config import PIPELINE_ACCOUNT, PIPELINE_SCOPE, credentials
from ..tokens import identity
from .bootstrap_tape import create_tape_rses

ACCOUNT_LIMIT_BYTES = 10 * 1024**4


def create_schema() -> None:
    """Tables, alembic stamp, base VO and root account; each step only when it is missing, so a
    bootstrap interrupted half-way completes on the next `up`."""
    from alembic import command
    from alembic.config import Config
    from rucio.common.config import config_get
    from rucio.db.sqla.session import get_engine
    from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
    from sqlalchemy import inspect, text

    engine = get_engine()
    if not inspect(engine).has_table("accounts"):
        build_database()
        print("schema: tables created")
    if not inspect(engine).has_table("alembic_version"):
        command.stamp(Config(config_get("alembic", "cfg")), "head")
    with engine.connect() as conn:
        has_vo = conn.execute(text("SELECT count(*) FROM vos")).scalar()
        has_root = conn.execute(
            text("SELECT count(*) FROM accounts WHERE account = 'root'")
        ).scalar()
    if not has_vo:
        create_base_vo()
    if not has_root:
        create_root_account()
        print("schema: root account created")


def _protocols(layout: Layout, site: Site, ports: dict[str, int]) -> list[dict[str, Any]]:
    """Every protocol on the same directory: Rucio matches `file` only with `file`, `https` only
    with `https`/`davs` and `root` only with `root`, so a site reachable every way can exchange
    data with any other. An XRootD site prefers `root`, then https; the others their WebDAV
    or posix access as `prefer_https` says."""
    if site.storage == XROOTD:
        order = ["root", "https", "file"]
    else:
        order = ["https", "file"] if site.prefer_https else ["file", "https"]

    def domains(scheme: str) -> dict[str, dict[str, int]]:
        priority = order.index(scheme) + 1
        ops = {"read": priority, "write": priority, "delete": priority}
        return {
            "lan": dict(ops),
            "wan": {**ops, "third_party_copy_read": priority, "third_party_copy_write": priority},
        }

    protocols: list[dict[str, Any]] = [
        {
            "scheme": "file",
            "hostname": "",
            "port": 0,
            "prefix": str(layout.rse_dir(site.rse)) + "/",
            "impl": "rucio.rse.protocols.posix.Default",
            "domains": domains("file"),
        },
        {
            "scheme": "https",
            "hostname": LOOPBACK,
            "port": ports[site.https_port],
            "prefix": "/",
            "impl": "rucio.rse.protocols.webdav.Default",
            "domains": domains("https"),
            "extended_attributes": None,
        },
    ]
    if site.storage == XROOTD:
        protocols.append({
            "scheme": "root",
            "hostname": LOOPBACK,
            "port": ports[f"xrd_{site.rse}"],
            # root://host:port//path: XRootD refuses relative paths (one slash).
            "prefix": "//",
            "impl": "rucio.rse.protocols.xrootd.Default",
            "domains": domains("root"),
        })
    return protocols


def create_catalog(layout: Layout) -> None:
    from rucio.client import Client
    from rucio.common.exception import Duplicate

    ports = layout.ports()
    client = Client()
    creds = credentials(layout)

    if PIPELINE_ACCOUNT not in {a["account"] for a in client.list_accounts()}:
        client.add_account(PIPELINE_ACCOUNT, "USER", "lofar@localhost")
    # A user account as a production DataLake has it: its scope and quotas, no admin. What the
    # pipeline needs beyond Rucio's generic policy (registering replicas where it has quota,
    # deleting its own rules) the testbed's policy package allows (servers/rucio_policy).
    attrs = {a["key"] for page in client.list_account_attributes(PIPELINE_ACCOUNT) for a in page}
    if "admin" in attrs:  # granted by testbeds made before the policy package
        client.delete_account_attribute(PIPELINE_ACCOUNT, "admin")
    try:
        client.add_identity(
            PIPELINE_ACCOUNT,
            PIPELINE_ACCOUNT,
            "USERPASS",
            "lofar@localhost",
            default=True,
            password=creds.lofar_password,
        )
    except Duplicate:
        pass
    # The identity tokens from the testbed's issuer carry (`sub` lofar-pipeline): token mode.
    try:
        client.add_identity(PIPELINE_ACCOUNT, identity(ports), "OIDC", "lofar@localhost")
    except Duplicate:
        pass
    if PIPELINE_SCOPE not in client.list_scopes():
        client.add_scope(PIPELINE_ACCOUNT, PIPELINE_SCOPE)

    fts_url = f"https://{LOOPBACK}:{ports['fts']}"
    existing = {r["rse"] for r in client.list_rses()}
    for site in SITES:
        if site.rse not in existing:
            client.add_rse(site.rse, deterministic=True, volatile=False)
        have = (
            {p["scheme"] for p in client.get_protocols(site.rse)} if site.rse in existing else set()
        )
        for proto in _protocols(layout, site, ports):
            if proto["scheme"] not in have:
                client.add_protocol(site.rse, proto)
        for key, value in (("fts", fts_url), ("site", site.site), ("verify_checksum", True)):
            client.add_rse_attribute(site.rse, key, value)
        for account in ("root", PIPELINE_ACCOUNT):
            client.set_local_account_limit(account, site.rse, ACCOUNT_LIMIT_BYTES)

    for src in SITES:
        for dst in SITES:
            if src.rse == dst.rse:
                continue
            distance = 1 if "SITE_C" not in (src.site, dst.site) else 2
            try:
                client.add_distance(src.rse, dst.rse, {"distance": distance})
            except Duplicate:
                client.update_distance(src.rse, dst.rse, {"distance": distance})
    tape = create_tape_rses(client, ports, fts_url, ACCOUNT_LIMIT_BYTES)
    rses = [s.rse for s in SITES] + tape
    print("catalog: " + json.dumps({"rses": rses, "scope": PIPELINE_SCOPE}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["schema", "catalog"])
    parser.add_argument("--layout", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "schema":
        create_schema()
    else:
        create_catalog(Layout(args.layout))
    return 0


if __name__ == "__main__":
    sys.exit(main())

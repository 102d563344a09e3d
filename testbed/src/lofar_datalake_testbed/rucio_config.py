"""Rucio configuration files for the testbed: one for the server and daemons, one for clients.

Both carry passwords, so both are written mode 0600 and never printed.
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .layout import LOOPBACK, Layout

PIPELINE_ACCOUNT = "lofar"
PIPELINE_SCOPE = "lofar"
ISSUER_ID = "testbed"  # the token issuer's key in Rucio's idpsecrets file
RUCIO_AUDIENCE = "rucio"  # Rucio's default `[oidc] expected_audience`


@dataclass(frozen=True)
class Credentials:
    root_password: str
    lofar_password: str
    # Client secrets at the token issuer: the pipeline's (what an agent such as oidc-agent
    # holds) and Rucio's own registration.
    lofar_token_secret: str
    rucio_token_secret: str


def credentials(layout: Layout) -> Credentials:
    """Random secrets made on the first `up` and kept in the (private) state directory; a
    secret missing from an older testbed's file is added."""
    path = layout.etc / "credentials.ini"
    parser = configparser.ConfigParser()
    if path.exists():
        parser.read(path)
    wanted = {("root", "password"), ("lofar", "password"), ("lofar", "token_secret"),
              ("rucio-server", "token_secret")}
    missing = [(s, o) for s, o in sorted(wanted) if not parser.has_option(s, o)]
    for section, option in missing:
        if not parser.has_section(section):
            parser[section] = {}
        parser[section][option] = secrets.token_urlsafe(24)
    if missing:
        write_private_ini(path, parser)
    return Credentials(parser["root"]["password"], parser["lofar"]["password"],
                       parser["lofar"]["token_secret"], parser["rucio-server"]["token_secret"])


def write_private_ini(path: Path, parser: configparser.ConfigParser) -> None:
    buffer = io.StringIO()
    parser.write(buffer)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(buffer.getvalue())
    os.chmod(path, 0o600)


def _client_section(layout: Layout, port: int, account: str, password: str) -> dict[str, str]:
    # Over TLS, the server's certificate checked against the testbed CA: passwords and tokens
    # never cross even the loopback in clear.
    url = f"https://{LOOPBACK}:{port}"
    return {
        "rucio_host": url,
        "auth_host": url,
        "ca_cert": str(layout.pki_dir / "ca.pem"),
        "auth_type": "userpass",
        "username": account,
        "password": password,
        "account": account,
        "request_retries": "2",
        # A per-testbed token file: two testbeds on one machine must not share cached tokens.
        "auth_token_file_path": str(layout.run / f"token-{account}"),
        # The client certificate services that want one (FTS, writing to storage) get, for
        # clients without $X509_USER_PROXY set.
        "client_x509_proxy": str(layout.pki_dir / "proxy.pem"),
    }


def write_configs(
    layout: Layout, db_url: str, ports: dict[str, int], migrate_repo: Path,
    messaging: dict[str, str] | None = None,
) -> None:
    """`migrate_repo`: Rucio's alembic scripts in the server environment; `messaging`: the
    conveyor-receiver's broker (`[messaging-fts3]`, broker.py)."""
    creds = credentials(layout)
    alembic_ini = layout.etc / "alembic.ini"
    alembic = configparser.ConfigParser(interpolation=None)
    alembic["alembic"] = {"script_location": str(migrate_repo), "sqlalchemy.url": db_url}
    # Rucio's migration env calls logging.config.fileConfig on this file.
    alembic["loggers"] = {"keys": "root"}
    alembic["handlers"] = {"keys": "console"}
    alembic["formatters"] = {"keys": "generic"}
    alembic["logger_root"] = {"level": "WARNING", "handlers": "console"}
    alembic["handler_console"] = {
        "class": "StreamHandler",
        "args": "(sys.stderr,)",
        "level": "NOTSET",
        "formatter": "generic",
    }
    alembic["formatter_generic"] = {"format": "%(levelname)-5.5s [%(name)s] %(message)s"}
    write_private_ini(alembic_ini, alembic)

    server = configparser.ConfigParser(interpolation=None)
    # No `multi_vo` key: Rucio's bootstrap reads it with bool("False") == True.
    server["common"] = {"logdir": str(layout.logs), "loglevel": "INFO"}
    server["client"] = _client_section(layout, ports["rucio"], "root", creds.root_password)
    server["client"]["username"] = "root"
    server["database"] = {"default": db_url, "pool_size": "10", "max_overflow": "20"}
    server["alembic"] = {"cfg": str(alembic_ini)}
    server["bootstrap"] = {
        "userpass_identity": "root",
        "userpass_pwd": creds.root_password,
        "userpass_email": "root@localhost",
        # Empty, so the bootstrap does not attach Rucio's built-in demo X.509/GSS/SSH identities.
        "x509_identity": "",
        "gss_identity": "",
        "ssh_identity": "",
    }
    server["policy"] = {
        # The DataLake's permissions: generic, plus quota-bound replica registration and
        # deleting one's own rules (servers/rucio_policy), so the pipeline needs no admin.
        "package": "lofar_datalake_testbed.servers.rucio_policy",
        "permission": "generic",
        "schema": "generic",
        "lfn2pfn_algorithm_default": "hash",
    }
    server["conveyor"] = {
        "scheme": "file,https",
        "transfertool": "fts3",
        "ftshosts": f"https://{LOOPBACK}:{ports['fts']}",
        # The client certificate Rucio's FTS3Transfertool presents to an https FTS.
        "usercert": str(layout.pki_dir / "proxy.pem"),
    }
    if messaging is not None:
        server["messaging-fts3"] = messaging
    server["monitor"] = {"enable_metrics": "False"}
    server["api"] = {}
    server["oidc"] = _oidc_section(layout)
    write_private_ini(layout.server_config, server)

    client = configparser.ConfigParser(interpolation=None)
    client["client"] = _client_section(
        layout, ports["rucio"], PIPELINE_ACCOUNT, creds.lofar_password
    )
    client["policy"] = {"lfn2pfn_algorithm_default": "hash"}
    write_private_ini(layout.client_config, client)

    # Token mode: no password anywhere; Rucio's client takes the token from WLCG bearer-token
    # discovery (BEARER_TOKEN_FILE) and never asks the server for one of its own.
    section = dict(client["client"])
    # Nor a certificate: in token mode the token alone reaches Rucio, FTS and storage.
    for option in ("username", "password", "client_x509_proxy"):
        section.pop(option)
    section["auth_type"] = "oidc"
    section["auth_token_file_path"] = str(layout.run / f"token-{PIPELINE_ACCOUNT}-oidc")
    client["client"] = section
    write_private_ini(layout.token_client_config, client)


def _oidc_section(layout: Layout) -> dict[str, str]:
    """Rucio trusts the testbed's issuer: tokens it signed, with `aud` rucio and scope
    "openid profile", authenticate the account their identity (`SUB=…, ISS=…`) is mapped to."""
    return {
        "idpsecrets": str(layout.issuer_dir / "rucio-idpsecrets.json"),
        "admin_issuer": ISSUER_ID,
        "expected_audience": RUCIO_AUDIENCE,
        "expected_scope": "openid profile",
    }

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


@dataclass(frozen=True)
class Credentials:
    root_password: str
    lofar_password: str


def credentials(layout: Layout) -> Credentials:
    """Random passwords made on the first `up` and kept in the (private) state directory."""
    path = layout.etc / "credentials.ini"
    parser = configparser.ConfigParser()
    if path.exists():
        parser.read(path)
        return Credentials(parser["root"]["password"], parser["lofar"]["password"])
    creds = Credentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    parser["root"] = {"password": creds.root_password}
    parser["lofar"] = {"password": creds.lofar_password}
    write_private_ini(path, parser)
    return creds


def write_private_ini(path: Path, parser: configparser.ConfigParser) -> None:
    buffer = io.StringIO()
    parser.write(buffer)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(buffer.getvalue())
    os.chmod(path, 0o600)


def _client_section(layout: Layout, port: int, account: str, password: str) -> dict[str, str]:
    url = f"http://{LOOPBACK}:{port}"
    return {
        "rucio_host": url,
        "auth_host": url,
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
    layout: Layout, db_url: str, ports: dict[str, int], migrate_repo: Path
) -> None:
    """`migrate_repo`: Rucio's alembic scripts in the server environment."""
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
    server["monitor"] = {"enable_metrics": "False"}
    server["api"] = {}
    write_private_ini(layout.server_config, server)

    client = configparser.ConfigParser(interpolation=None)
    client["client"] = _client_section(
        layout, ports["rucio"], PIPELINE_ACCOUNT, creds.lofar_password
    )
    client["policy"] = {"lfn2pfn_algorithm_default": "hash"}
    write_private_ini(layout.client_config, client)

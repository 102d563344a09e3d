"""Rucio accounts made by tests through the testbed's root account, client configurations for
them, and a search for a secret in everything a run leaves behind."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

from lofar_datalake_testbed.layout import SITES

# Runs in its own process: Rucio reads one config per process, and the root account's token
# must never land in the pipeline account's token file. The password comes through stdin, so it
# is in no process's arguments.
_ADD_ACCOUNT = """
import sys
from rucio.client import Client
account, rses = sys.argv[1], sys.argv[2:]
password = sys.stdin.read()
client = Client()
client.add_account(account, "USER", f"{account}@localhost")
client.add_account_attribute(account, "admin", "True")
client.add_identity(account, account, "USERPASS", f"{account}@localhost", default=True,
                    password=password)
for rse in rses:
    client.set_local_account_limit(account, rse, 10 * 1024**3)
"""


def add_userpass_account(testbed, account: str, password: str) -> None:
    """A new account with a userpass identity, a quota on every RSE and the admin attribute: it
    writes into the pipeline's scope, which only the pipeline account owns."""
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run([sys.executable, "-c", _ADD_ACCOUNT, account,
                           *(s.rse for s in SITES)], input=password, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def client_config(testbed, directory: Path, account: str, auth_type: str = "userpass") -> Path:
    """A client configuration for `account` without any password in it (it comes from the
    environment) and with a token file of its own, so that no cached token stands in for the
    credentials under test."""
    base = configparser.ConfigParser(interpolation=None)
    base.read(testbed.layout.client_config)
    host = base["client"]["rucio_host"]
    config = configparser.ConfigParser(interpolation=None)
    config["client"] = {
        "rucio_host": host, "auth_host": host, "ca_cert": base["client"]["ca_cert"],
        "auth_type": auth_type, "username": account,
        "account": account, "request_retries": "2",
        "auth_token_file_path": str(directory / f"token-{account}"),
    }
    config["policy"] = {"lfn2pfn_algorithm_default": "hash"}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rucio-{account}-{auth_type}.cfg"
    with open(path, "w") as handle:
        config.write(handle)
    path.chmod(0o600)
    return path


# A researcher as a DataLake operator makes one: a USER account without admin, its own scope,
# a userpass identity and a quota on every RSE.
_ADD_RESEARCHER = """
import sys
from rucio.client import Client
account, scope, rses = sys.argv[1], sys.argv[2], sys.argv[3:]
password = sys.stdin.read()
client = Client()
if account not in {a["account"] for a in client.list_accounts()}:
    client.add_account(account, "USER", f"{account}@localhost")
    client.add_identity(account, account, "USERPASS", f"{account}@localhost", default=True,
                        password=password)
if scope not in client.list_scopes():
    client.add_scope(account, scope)
for rse in rses:
    client.set_local_account_limit(account, rse, 10 * 1024**3)
"""

# Uploads as the account itself (its password from stdin, into a private configuration).
_UPLOAD = """
import json, sys
from rucio.client.uploadclient import UploadClient
items = json.loads(sys.stdin.read())
UploadClient().upload(items)
"""


def add_researcher_account(testbed, account: str, password: str, scope: str) -> None:
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run([sys.executable, "-c", _ADD_RESEARCHER, account, scope,
                           *(s.rse for s in SITES)], input=password, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# The identity an operator adds for a researcher's token client: the issuer's tokens for that
# client (`sub` its id) authenticate the account.
_ADD_OIDC_IDENTITY = """
import sys
from rucio.client import Client
account, identity = sys.argv[1], sys.argv[2]
Client().add_identity(account, identity, "OIDC", f"{account}@localhost")
"""


def add_oidc_identity(testbed, account: str, client_id: str) -> None:
    from lofar_datalake_testbed.tokens import issuer_url

    identity = f"SUB={client_id}, ISS={issuer_url(testbed.layout.ports())}"
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run([sys.executable, "-c", _ADD_OIDC_IDENTITY, account, identity],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def upload_as(testbed, directory: Path, account: str, password: str,
              files: list[tuple[Path, str, str]]) -> None:
    """Upload (path, DID, RSE) triples as `account`: the researcher puts their own data in."""
    config = client_config(testbed, directory, account)
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(config)
    parsed["client"]["password"] = password
    with open(config, "w") as handle:
        parsed.write(handle)
    items = [{"path": str(p), "rse": rse, "did_scope": did.split(":", 1)[0],
              "did_name": did.split(":", 1)[1], "register_after_upload": True}
             for p, did, rse in files]
    env = {**os.environ, "RUCIO_CONFIG": str(config),
           "X509_USER_PROXY": str(testbed.pki.proxy)}
    done = subprocess.run([sys.executable, "-c", _UPLOAD], input=json.dumps(items), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

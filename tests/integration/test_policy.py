"""The pipeline account has what a production DataLake gives a user (its scope, quotas on named
RSEs, no admin); operator-only actions are refused to it, and what the pipeline itself does
(registering replicas where it has quota, deleting its own rules) still works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rucio.common.exception import AccessDenied

from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

_AS_ROOT = """
import json, sys
from rucio.client import Client
client = Client()
did = json.loads(sys.argv[1])
print(client.add_replication_rule([did], 1, "SITE_C_DAV", lifetime=3600)[0])
"""


def _root_rule(testbed, did: Did) -> str:
    """A rule owned by root, made with the operator's configuration."""
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run([sys.executable, "-c", _AS_ROOT, f'{{"scope": "{did.scope}", '
                           f'"name": "{did.name}"}}'], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_pipeline_account_holds_no_admin(rucio):
    whoami = rucio.client.whoami()["account"]
    attrs = {a["key"] for page in rucio.client.list_account_attributes(whoami) for a in page}
    assert "admin" not in attrs


def test_operator_only_actions_are_refused_to_the_pipeline(rucio, seed, unique):
    client = rucio.client
    with pytest.raises(AccessDenied):
        client.add_rse(f"EVIL_{abs(hash(unique)) % 10**6}")
    with pytest.raises(AccessDenied):
        client.set_local_account_limit(client.account, "SITE_A_DISK", 10**15)
    with pytest.raises(AccessDenied):
        client.add_account_attribute(client.account, "admin", "True")
    with pytest.raises(AccessDenied):
        client.add_account("intruder", "USER", "intruder@localhost")
    with pytest.raises(AccessDenied):
        client.add_rse_attribute("SITE_A_DISK", "fts", "http://127.0.0.1:9")
    seeded = seed([f"{unique}/bad.dat"], "SITE_B_DISK")[0]
    with pytest.raises(AccessDenied):
        client.declare_bad_file_replicas(
            [{"scope": seeded.did.scope, "name": seeded.did.name, "rse": "SITE_B_DISK"}],
            "test")


def test_another_accounts_rule_cannot_be_deleted_but_its_own_can(testbed, rucio, seed, unique):
    seeded = seed([f"{unique}/rules.dat"], "SITE_B_DISK")[0]
    theirs = _root_rule(testbed, seeded.did)
    with pytest.raises(AccessDenied):
        rucio.client.delete_replication_rule(theirs, purge_replicas=False)
    mine = rucio.client.add_replication_rule([seeded.did.as_dict()], 1, "SITE_A_DISK",
                                             lifetime=3600)[0]
    rucio.client.delete_replication_rule(mine, purge_replicas=False)
    assert rucio.client.get_replication_rule(theirs)["account"] == "root"

"""Uploads verify the storage's TLS certificate before a byte is sent, and the Rucio server is
reached over https only.

The plugin writes an upload's bytes itself (`datalake_core.storage_write`), not through Rucio's
WebDAV protocol (which turns certificate checks off): a storage whose certificate the testbed CA
did not issue gets nothing, not even the client certificate, and nothing is registered. The
storage an impostor runs here would accept the testbed's client certificate for writing, so only
the client's check stands between it and the bytes.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from fts_support import webdav_servers

from datalake_core import transfer_http
from datalake_core.checksums import adler32_of_file
from datalake_core.errors import DataLakeError, RucioUnavailable, UntrustedStorage
from datalake_core.rucio_adapter import Did
from lofar_datalake_testbed.pki import ensure_pki
from lofar_datalake_testbed.rucio_config import PIPELINE_ACCOUNT

pytestmark = pytest.mark.integration

# Run as root (the operator's configuration): an RSE whose one protocol is https at `url`, with
# or without a quota for the pipeline account.
_ADD_RSE = """
import json, sys
from urllib.parse import urlsplit
from rucio.client import Client
rse, url, account, quota = json.loads(sys.argv[1])
client, where = Client(), urlsplit(url)
client.add_rse(rse, deterministic=True, volatile=False)
ops = {"read": 1, "write": 1, "delete": 1}
client.add_protocol(rse, {"scheme": "https", "hostname": where.hostname, "port": where.port,
                          "prefix": "/", "impl": "rucio.rse.protocols.webdav.Default",
                          "domains": {"lan": ops, "wan": ops}})
if quota:
    client.set_local_account_limit(account, rse, 10**12)
"""
_DELETE_RSE = """
import sys
from rucio.client import Client
Client().delete_rse(sys.argv[1])
"""


def _as_root(testbed, script: str, *args: str) -> None:
    env = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture()
def https_rse(testbed) -> Iterator[Callable[..., str]]:
    """Makes RSEs served by a WebDAV server of the test's; deletes them afterwards."""
    made: list[str] = []

    def make(url: str, *, quota: bool) -> str:
        rse = f"TLS_TEST_{time.time_ns() % 10**12}"
        _as_root(testbed, _ADD_RSE, json.dumps([rse, url, PIPELINE_ACCOUNT, quota]))
        made.append(rse)
        return rse

    yield make
    for rse in made:
        _as_root(testbed, _DELETE_RSE, rse)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_an_upload_to_the_https_rse_lands_registers_and_reads_back(testbed, rucio, tmp_path):
    source = tmp_path / "subband.tar"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    did = Did("lofar", f"tests/{time.time_ns()}/subband.tar")

    checksum = rucio.upload(source, did, "SITE_C_DAV")

    assert checksum == adler32_of_file(source)
    [replica] = rucio.list_replicas([did], schemes=["https"])
    assert replica["states"] == {"SITE_C_DAV": "AVAILABLE"}
    assert (replica["bytes"], replica["adler32"]) == (source.stat().st_size, checksum)
    rules = rucio.list_did_rules(did)
    assert [(r["account"], r["rse_expression"]) for r in rules] == [(rucio.account, "SITE_C_DAV")]
    [pfn] = replica["rses"]["SITE_C_DAV"]
    fetched = tmp_path / "fetched.tar"
    transfer_http.fetch(pfn, fetched, size=replica["bytes"], adler32=checksum,
                        verify=str(testbed.pki.ca_cert), timeout=30)
    assert fetched.read_bytes() == source.read_bytes()


def test_storage_with_a_certificate_from_another_ca_gets_nothing_and_nothing_is_registered(
        testbed, rucio, https_rse, tmp_path):
    impostor_pki = ensure_pki(tmp_path / "impostor-pki")  # a CA of its own
    (tmp_path / "impostor").mkdir()
    with webdav_servers(tmp_path / "impostor", impostor_pki, count=1,
                        client_ca=testbed.pki.ca_cert) as [(url, root)]:
        # The impostor would take the testbed's client certificate for writing:
        accepted = requests.put(f"{url}/probe", data=b"x", cert=str(testbed.pki.proxy),
                                verify=str(impostor_pki.ca_cert), timeout=10)
        assert accepted.status_code in (201, 204)
        (root / "probe").unlink()
        rse = https_rse(url, quota=True)
        source = tmp_path / "secret.dat"
        source.write_bytes(os.urandom(4096))
        did = Did("lofar", f"tests/{time.time_ns()}/secret.dat")

        with pytest.raises(UntrustedStorage) as failed:
            rucio.upload(source, did, rse)

        message = str(failed.value)
        assert "TLS verification" in message and "certificate verify failed" in message
        assert url.removeprefix("https://") in message and rse in message
        assert str(testbed.pki.ca_cert) in message  # the CA it was checked against
        assert _files_under(root) == []
    assert rucio.get_metadata(did) is None


def test_a_failed_registration_deletes_the_bytes_written(testbed, rucio, https_rse, tmp_path):
    """The account has no quota on this RSE: Rucio refuses the replica after the PUT."""
    (tmp_path / "dav").mkdir()
    with webdav_servers(tmp_path / "dav", testbed.pki, count=1) as [(url, root)]:
        rse = https_rse(url, quota=False)
        source = tmp_path / "product.dat"
        source.write_bytes(os.urandom(10_000))
        did = Did("lofar", f"tests/{time.time_ns()}/product.dat")

        with pytest.raises(DataLakeError, match="were deleted again") as failed:
            rucio.upload(source, did, rse)

        assert f"registering 1 replicas on {rse}" in str(failed.value)
        assert _files_under(root) == []
    assert rucio.get_metadata(did) is None


def test_registering_outputs_into_a_dataset_needs_the_right_to_add_replicas_there(
        testbed, rucio, https_rse, tmp_path):
    """A product is registered with `attach_dids` and its RSE (outputs.py): the policy asks for
    the same right there as for `add_replicas`, so no quota, no replica; the bytes go again."""
    (tmp_path / "dav").mkdir()
    dataset = Did("lofar", f"tests/{time.time_ns()}/run")
    rucio.ensure_dataset(dataset)
    with webdav_servers(tmp_path / "dav", testbed.pki, count=1) as [(url, root)]:
        source = tmp_path / "product.dat"
        source.write_bytes(os.urandom(10_000))
        did = Did("lofar", f"{dataset.name}/product.dat")
        size, adler32 = source.stat().st_size, adler32_of_file(source)

        refused = https_rse(url, quota=False)
        with pytest.raises(DataLakeError, match="were deleted again") as failed:
            rucio.upload_into(source, did, refused, dataset, size=size, adler32=adler32,
                              meta={"k": "v"})
        assert "can not add data identifiers" in str(failed.value)
        assert _files_under(root) == []
        assert rucio.get_metadata(did) is None

        allowed = https_rse(url, quota=True)
        rucio.upload_into(source, did, allowed, dataset, size=size, adler32=adler32,
                          meta={"k": "v"})
        [replica] = rucio.list_replicas([did])
        assert replica["states"] == {allowed: "AVAILABLE"} and replica["adler32"] == adler32
        [parent] = rucio.client.list_parent_dids(did.scope, did.name)
        assert parent["name"] == dataset.name


def _client_config_without_ca(testbed, directory: Path) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(testbed.layout.client_config)
    del parser["client"]["ca_cert"]
    parser["client"]["auth_token_file_path"] = str(directory / "token")  # no cached token
    path = directory / "rucio.cfg"
    with open(path, "w") as handle:
        parser.write(handle)
    return path


_CONNECT = """
from datalake_core.rucio_adapter import RucioAdapter
print(RucioAdapter().account)
"""


def test_a_rucio_client_without_the_testbed_ca_cannot_reach_the_server(testbed, tmp_path):
    host = configparser.ConfigParser(interpolation=None)
    host.read(testbed.layout.client_config)
    assert host["client"]["rucio_host"].startswith("https://")
    env = {k: v for k, v in os.environ.items()
           if k not in ("X509_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    for config, works in ((testbed.layout.client_config, True),
                          (_client_config_without_ca(testbed, tmp_path), False)):
        done = subprocess.run([sys.executable, "-c", _CONNECT], capture_output=True, text=True,
                              env={**env, "RUCIO_CONFIG": str(config)}, timeout=120)
        if works:
            assert done.returncode == 0 and done.stdout.strip() == PIPELINE_ACCOUNT, done.stderr
        else:
            assert done.returncode != 0
            assert RucioUnavailable.__name__ in done.stderr
            assert "certificate verify failed" in done.stderr, done.stderr[-2000:]
            assert "issued by a CA in ca_cert" in done.stderr


def test_plain_http_gets_no_answer_from_the_rucio_server(testbed):
    port = testbed.layout.ports()["rucio"]
    try:
        reply = requests.get(f"http://127.0.0.1:{port}/ping", timeout=10)
    except requests.ConnectionError:
        return
    assert reply.status_code >= 400 and "version" not in reply.text


"""Planted secrets never leak: a userpass password for an account made for this test, a wrong
password, and an FTS token are given to Snakemake the documented way (environment variables),
and a successful run and three failing runs are made (the testbed's FTS accepts only client
certificates, so the run given the token is refused). Then every artefact is searched for them:
stdout and stderr, everything under the test's directories (the working directory with
Snakemake's logs and metadata and the provider's journal, the client configuration), the
testbed's service logs and FTS job store, the metadata of the stored output, the FTS jobs, and
the argument lists of all processes sampled while the runs went on.
"""

from __future__ import annotations

import base64
import json
import secrets
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import requests
from rucio_accounts import add_userpass_account, client_config
from secret_search import Sampler, files_containing, process_args

from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did

pytestmark = pytest.mark.integration

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW = """
rule all:
    input: storage.datalake(f"datalake://lofar/{config['out']}/summary.txt")

# A `run:` job: Snakemake starts a process of its own for it, passing the storage settings.
rule check:
    input: storage.datalake(f"datalake://lofar/{config['prefix']}/SB{{sb}}.dat")
    output: "checked/{sb}.txt"
    run:
        import time, zlib
        data = open(input[0], "rb").read()
        time.sleep(1)  # long enough to be seen by the process sampler
        open(output[0], "w").write(f"{len(data)} {zlib.adler32(data):08x}\\n")

rule publish:
    input: "checked/000.txt"
    output: storage.datalake(f"datalake://lofar/{config['out']}/summary.txt")
    shell: "cat {input} > {output}"
"""


def _fts_token(marker: str) -> str:
    """A JWT-shaped bearer token whose signature is the planted marker."""
    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'sub': 'planted-subject'})}.{marker}"


@pytest.fixture()
def planted(testbed) -> dict[str, str]:
    account = f"sec{secrets.token_hex(5)}"
    values = {
        "account": account,
        "password": f"S3cr3t-planted-{secrets.token_hex(12)}",
        "wrong": f"S3cr3t-planted-wrong-{secrets.token_hex(12)}",
        "fts": f"S3cr3t-planted-fts-{secrets.token_hex(12)}",
    }
    add_userpass_account(testbed, account, values["password"])
    return values


def test_planted_secrets_appear_in_no_artefact(testbed, rucio, seed, unique, client_env,
                                               planted, tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(WORKFLOW)
    config = client_config(testbed, tmp_path / "etc", planted["account"])
    out = Did("lofar", f"{unique}/out/summary.txt")
    env = {**client_env, "SNAKEMAKE_STORAGE_DATALAKE_PASSWORD": planted["password"]}
    workdir = tmp_path / "work"
    workdir.mkdir()

    def run(prefix: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        args = [SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "--cores", "2",
                "--storage-datalake-rucio-config", str(config),
                "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
                "--storage-datalake-site-rse", "SITE_A_DISK",
                "--storage-datalake-stage-policy", "fts",
                "--storage-datalake-output-rse", "SITE_A_DISK",
                "--storage-datalake-output-metadata", "campaign=secrets-test",
                "--config", f"prefix={prefix}", f"out={unique}/out"]
        return subprocess.run(args, cwd=workdir, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=600)

    first = seed([f"{unique}/a/SB000.dat"], "SITE_B_DISK")
    seed([f"{unique}/b/SB000.dat"], "SITE_B_DISK", size=300)
    seed([f"{unique}/c/SB000.dat"], "SITE_B_DISK", size=200)
    with Sampler({"ps": process_args}, every=0.1) as sampled:
        ok = run(f"{unique}/a")
        assert ok.returncode == 0, ok.stderr[-3000:]
        # Fails at the output: a different summary under the same (immutable) name.
        immutable = run(f"{unique}/b")
        assert immutable.returncode != 0 and "immutable" in immutable.stderr
        # Without the cached token: Rucio uses a valid one instead of checking the password.
        for token in (tmp_path / "etc").glob("token-*"):
            token.unlink()
        wrong = run(f"{unique}/a", SNAKEMAKE_STORAGE_DATALAKE_PASSWORD=planted["wrong"])
        assert wrong.returncode != 0
        assert f"did not authenticate account {planted['account']} (auth type userpass)" in (
            wrong.stderr)
        # The FTS token: the service refuses it (the input then comes by a direct copy, and the
        # run fails at its immutable output), and nothing may repeat it.
        fts_log = testbed.layout.fts_dir / "fts.log"
        refusals = fts_log.read_text().count('"GET /" 401')
        fts_token = _fts_token(planted["fts"])
        refused = run(f"{unique}/c", SNAKEMAKE_STORAGE_DATALAKE_FTS_TOKEN=fts_token)
        assert refused.returncode != 0 and "immutable" in refused.stderr
        assert fts_log.read_text().count('"GET /" 401') > refusals

    # The runs really used the planted credentials: the account wrote the output; FTS copied
    # the inputs for the holder of the testbed's client certificate.
    meta = rucio.client.get_metadata(out.scope, out.name)
    assert meta["account"] == planted["account"]
    line = first[0].data
    assert meta["bytes"] == len(f"{len(line)} {zlib.adler32(line):08x}\n")
    jobs = [j for e in read_events(workdir) if e["event"] == "site_transfer"
            for j in e.get("fts_jobs", [])]
    assert len(jobs) >= 2, "the successful and the failing run staged their input by FTS"
    fts = f"https://127.0.0.1:{testbed.layout.ports()['fts']}"
    tls = {"cert": str(testbed.pki.proxy), "verify": str(testbed.pki.ca_cert)}
    fts_jobs = [requests.get(f"{fts}/jobs/{j}", timeout=30, **tls).text for j in jobs]
    assert all(json.loads(j)["user_dn"] == "/O=lofar-datalake testbed/CN=lofar" for j in fts_jobs)

    outputs = [r.stdout + r.stderr for r in (ok, immutable, wrong, refused)]
    stored = [json.dumps(rucio.client.get_metadata(out.scope, out.name, plugin=p), default=str)
              for p in ("DID_COLUMN", "JSON")]
    # The sampler saw the runs, including the process Snakemake starts for the `run:` job.
    ps_lines = sampled.lines("ps")
    assert any(planted["account"] in line for line in ps_lines)
    assert any("--target-jobs" in line and planted["account"] in line for line in ps_lines)
    for name in ("password", "wrong", "fts"):
        secret = planted[name]
        assert not [o for o in outputs if secret in o], name
        assert files_containing(secret, [tmp_path]) == [], name
        # The services' side too: Rucio, FTS and WebDAV logs, FTS's job store.
        assert files_containing(secret, [testbed.layout.logs, testbed.layout.fts_dir]) == []
        assert not [s for s in stored if secret in s], name
        assert not [j for j in fts_jobs if secret in j], name
        assert not [a for a in ps_lines if secret in a], name

    # What jobs get instead of the password: a private file with a Rucio token of the account.
    credential = workdir / ".snakemake" / "datalake-credential" / "job-credential.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    issued = json.loads(credential.read_text())
    assert issued["account"] == planted["account"] and issued["token"]
    assert "password" not in json.dumps(issued["rucio_config"])
    host = issued["rucio_config"]["client"]["rucio_host"]
    whoami = requests.get(f"{host}/accounts/whoami", timeout=30, verify=str(testbed.pki.ca_cert),
                          headers={"X-Rucio-Auth-Token": issued["token"]})
    assert whoami.status_code == 200 and whoami.json()["account"] == planted["account"]

    journals = list((workdir / ".snakemake" / "datalake").glob("journal-*.jsonl"))
    assert len(journals) >= 2
    assert all(stat.S_IMODE(j.stat().st_mode) == 0o600 for j in journals)

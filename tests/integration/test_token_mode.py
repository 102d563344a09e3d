"""The plugin in token mode against the real testbed: a bearer token from the testbed's issuer,
found through `BEARER_TOKEN_FILE`, and nothing else (no password, no client certificate).

The Rucio client lists, uploads and downloads as `lofar`; a token the agent renews in the file
is used from the next call on; an expired or refused token gives the one clear error, in this
process and in a Snakemake run, and never Rucio's interactive browser login.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from secret_search import Sampler, files_containing, job_environments, process_args

from datalake_core import storage_credentials, transfer_http
from datalake_core.errors import RucioAuthError
from datalake_core.journal import read_events
from datalake_core.rucio_adapter import Did, RucioAdapter
from lofar_datalake_testbed import tokens

pytestmark = pytest.mark.integration
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

WORKFLOW = """
rule all:
    input: storage.datalake(f"datalake://lofar/{config['prefix']}/SB000.dat")
    output: "copied.dat"
    shell: "cp {input} {output}"
"""


def _write_token(path: Path, token: str) -> None:
    """As an agent renews it: the whole file at once, 0600."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(token)
    tmp.chmod(0o600)
    tmp.replace(path)


def _expired(token: str) -> str:
    """The token with `exp` an hour ago (the signature no longer matches; the client refuses
    it on its `exp` before sending it)."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) - 3600
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{body}.{signature}"


@pytest.fixture()
def token_mode(testbed, rucio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[SimpleNamespace]:
    """This process (and the environment given to Snakemake) in token mode with a fresh token
    from the testbed's issuer in a file of the test's own. `rucio` (the password client the
    seeding uses) is made first."""
    from rucio.common.config import clean_cached_config

    token_file = tmp_path / "bt"
    token, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    _write_token(token_file, token)
    env = {"RUCIO_CONFIG": str(testbed.layout.token_client_config),
           "BEARER_TOKEN_FILE": str(token_file)}
    for name in ("X509_USER_PROXY", "BEARER_TOKEN", "RUCIO_AUTH_TYPE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clean_cached_config()
    yield SimpleNamespace(file=token_file, token=token, env={**os.environ, **env})
    clean_cached_config()


def _connect(testbed) -> RucioAdapter:
    return RucioAdapter.connect(testbed.layout.token_client_config)


def test_a_token_mode_client_lists_uploads_and_downloads_as_lofar(
        testbed, seed, unique, token_mode, tmp_path: Path) -> None:
    [seeded] = seed([f"{unique}/in/SB000.dat"], "SITE_C_DAV")
    adapter = _connect(testbed)
    assert adapter.client.auth_type == "oidc"
    assert adapter.client.whoami()["account"] == "lofar"
    [listed] = adapter.list_replicas([seeded.did], schemes=["https"])
    pfn = next(iter(listed["rses"]["SITE_C_DAV"]))

    source = tmp_path / "product.dat"
    source.write_bytes(os.urandom(2048))
    product = Did("lofar", f"{unique}/out/product.dat")
    adapter.upload(source, product, "SITE_C_DAV")
    meta = adapter.get_metadata(product)
    assert meta is not None and meta["account"] == "lofar"

    # Storage takes the bearer token alone (no client certificate anywhere in token mode).
    ca = str(testbed.pki.ca_cert)
    credential = storage_credentials.for_storage()
    assert credential.cert is None
    assert credential.headers == {"Authorization": f"Bearer {token_mode.token}"}
    written = requests.put(f"{pfn}.copy", data=b"written with a token", verify=ca,
                           headers=credential.headers, timeout=30)
    assert written.status_code in (200, 201, 204), written.text
    refused = requests.put(f"{pfn}.anonymous", data=b"x", verify=ca, timeout=30)
    assert refused.status_code in (401, 403)

    fetched = tmp_path / "fetched.dat"
    transfer_http.fetch(pfn, fetched, size=len(seeded.data), adler32=None,
                        verify=str(testbed.pki.ca_cert), timeout=30)
    assert fetched.read_bytes() == seeded.data
    back = adapter.download(product, "SITE_C_DAV", tmp_path / "download")
    assert back.read_bytes() == source.read_bytes()


def test_a_token_renewed_in_the_file_is_used_from_the_next_call(testbed, token_mode) -> None:
    adapter = _connect(testbed)
    _write_token(token_mode.file, _expired(token_mode.token))
    with pytest.raises(RucioAuthError, match="expired"):
        adapter.client.whoami()
    renewed, _ = tokens.fetch_token(testbed.layout, testbed.pki.ca_cert)
    assert renewed != token_mode.token
    _write_token(token_mode.file, renewed)
    assert adapter.client.whoami()["account"] == "lofar"  # the same client
    assert adapter.client.raw.auth_token == renewed


def test_a_token_the_server_refuses_is_the_clear_error_not_a_browser_login(
        testbed, token_mode, capsys: pytest.CaptureFixture[str]) -> None:
    adapter = _connect(testbed)
    head, body, signature = token_mode.token.split(".")
    forged = f"{head}.{body}.{signature[::-1]}"  # not the issuer's signature
    _write_token(token_mode.file, forged)
    with pytest.raises(RucioAuthError) as caught:
        adapter.client.whoami()
    message = str(caught.value)
    assert "did not authenticate account lofar (auth type oidc)" in message
    assert "the server refused the bearer token" in message
    assert f"$BEARER_TOKEN_FILE ({token_mode.file})" in message and "sub lofar-pipeline" in message
    assert signature not in message and signature[::-1] not in message
    printed = capsys.readouterr()
    assert "browser" not in printed.out + printed.err


def test_an_expired_token_stops_a_run_with_one_clear_error(
        testbed, seed, unique, token_mode, run_snakemake, tmp_path: Path) -> None:
    seed([f"{unique}/SB000.dat"], "SITE_A_DISK")
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(WORKFLOW)
    expired = _expired(token_mode.token)
    _write_token(token_mode.file, expired)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, snakefile, [
        "--storage-datalake-rucio-config", str(testbed.layout.token_client_config),
        "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
        "--config", f"prefix={unique}"], token_mode.env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    assert f"the bearer token from $BEARER_TOKEN_FILE ({token_mode.file})" in output
    assert "expired" in output and "lofar-datalake testbed token" in output
    assert "browser" not in output and "oidc_redirect" not in output
    assert expired.split(".")[2] not in output


SECRETS_WORKFLOW = """
rule all:
    input: storage.datalake(f"datalake://lofar/{config['out']}/summary.txt")

# A `run:` job: Snakemake starts a process of its own for it, as a batch system starts a job.
rule check:
    input: storage.datalake(f"datalake://lofar/{config['prefix']}/SB{{sb}}.dat")
    output: "checked/{sb}.txt"
    run:
        import time
        data = open(input[0], "rb").read()
        time.sleep(1)  # long enough to be seen by the samplers
        open(output[0], "w").write(f"{len(data)}\\n")

rule publish:
    input: "checked/000.txt"
    output: storage.datalake(f"datalake://lofar/{config['out']}/summary.txt")
    shell: "cat {input} > {output}"
"""


def test_the_bearer_token_appears_in_no_artefact(testbed, seed, unique, token_mode,
                                                 tmp_path: Path) -> None:
    """The token given the WLCG way in `$BEARER_TOKEN`, a run that stages its input by FTS,
    runs a job and stores a product: the token's signature (unique to it) is nowhere but in
    the job credential (and FTS's store of the jobs it runs), not in what the job processes
    inherit (what a batch system records with a job), their argument lists, the run's output and
    files, the services' logs, FTS's answers, or the product's metadata."""
    token = token_mode.token
    secret = token.split(".")[2]
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(SECRETS_WORKFLOW)
    workdir = tmp_path / "work"
    workdir.mkdir()
    seed([f"{unique}/in/SB000.dat"], "SITE_B_DISK")
    env = {k: v for k, v in token_mode.env.items() if k != "BEARER_TOKEN_FILE"}
    env["BEARER_TOKEN"] = token
    args = [SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "--cores", "2",
            "--storage-datalake-rucio-config", str(testbed.layout.token_client_config),
            "--storage-datalake-ca-bundle", str(testbed.pki.ca_cert),
            "--storage-datalake-site-rse", "SITE_A_DISK",
            "--storage-datalake-stage-policy", "fts",
            "--storage-datalake-output-rse", "SITE_C_DAV",
            "--storage-datalake-output-metadata", "campaign=token-secrets-test",
            "--config", f"prefix={unique}/in", f"out={unique}/out"]
    with Sampler({"ps": process_args, "jobs": job_environments}, every=0.1) as sampled:
        run = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    # The run authenticated with the token: the product is the pipeline account's, FTS
    # copied the input, and the job's process inherited a path, never the token.
    out = Did("lofar", f"{unique}/out/summary.txt")
    rucio = _connect(testbed)
    assert rucio.get_metadata(out)["account"] == "lofar"  # type: ignore[index]
    jobs = [j for e in read_events(workdir) if e["event"] == "site_transfer"
            for j in e.get("fts_jobs", [])]
    assert jobs, "the input was staged by FTS, with the token"
    job_envs = sampled.lines("jobs")
    assert any(line.startswith("SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL=") for line in job_envs)
    assert not any(line.startswith("BEARER_TOKEN=") for line in job_envs)

    credential = workdir / ".snakemake" / "datalake-credential" / "job-credential.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    issued = json.loads(credential.read_text())
    assert issued["bearer"] and issued["token"] == token
    assert issued["rucio_config"]["client"]["auth_type"] == "oidc"

    fts = f"https://127.0.0.1:{testbed.layout.ports()['fts']}"
    fts_jobs = [requests.get(f"{fts}/jobs/{j}", timeout=30, verify=str(testbed.pki.ca_cert),
                             headers={"Authorization": f"Bearer {token}"}).text for j in jobs]
    stored = [json.dumps(rucio.client.get_metadata(out.scope, out.name, plugin=p), default=str)
              for p in ("DID_COLUMN", "JSON")]
    assert secret not in run.stdout + run.stderr
    assert files_containing(secret, [tmp_path], skip=[credential, token_mode.file]) == []
    # FTS keeps the token of a job it runs, for that job's copies, in its store, as real FTS
    # does (servers/fts/store.py); its logs and its answers never show it.
    fts_store = list(testbed.layout.fts_dir.glob("fts.sqlite*"))
    assert files_containing(secret, [testbed.layout.logs, testbed.layout.fts_dir],
                            skip=fts_store) == []
    assert not [s for s in stored + fts_jobs if secret in s]
    assert sampled.containing(secret) == []

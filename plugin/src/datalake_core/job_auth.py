"""Who this process is in a run, for authentication: the submitting Snakemake, which logs in
with the account's own credentials and issues the jobs' short-lived credential
(`job_credential`), or one of its jobs, which uses that credential and nothing else.

The submitting process also takes the password out of its environment once it has read it:
batch systems copy the submitter's environment into their job records (Slurm's `--export=ALL`,
the stored job environment) and local jobs inherit it. A bearer token in `$BEARER_TOKEN` moves to
a private file for the same reason (`bearer_token.move_out_of_environment`).

In token mode (auth type `oidc`) jobs get the user's bearer token, discovered again at each
renewal (the user's agent renews it), instead of a Rucio token made with the password.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path

from . import bearer_token
from . import job_credential as jc
from .rucio_adapter import RucioAdapter
from .rucio_connection import TOKEN_MODE
from .settings import JobAuth, ProviderConfig

PASSWORD_ENV = "SNAKEMAKE_STORAGE_DATALAKE_PASSWORD"  # noqa: S105  (a variable name)
CREDENTIAL_ENV = "SNAKEMAKE_STORAGE_DATALAKE_JOB_CREDENTIAL"
# A bearer token that is not a JWT states no expiry: taken as valid this long (the renewer looks
# for a new one at half of it).
OPAQUE_TOKEN_RECHECK = 3600


class JobAuthority:
    def __init__(self, cfg: ProviderConfig, *, as_job: bool) -> None:
        """`as_job`: whether Snakemake started this process as one of a run's jobs (the plugin
        tells). A job credential in the environment of a run (inherited from an earlier run in
        the same process tree) is that run's business, not a reason to act as a job."""
        if cfg.job_credential is not None and not as_job:
            cfg = replace(cfg, job_credential=None)
        self.cfg = cfg
        self._credential: jc.JobCredential | None = None
        self._renewer: jc.Renewer | None = None
        if cfg.job_credential is not None:
            # Read now if it is already where the job is (the run id names the journal);
            # otherwise at the first connection, in the working directory.
            with contextlib.suppress(jc.JobCredentialError):
                self._credential = jc.read(cfg.job_credential)
        elif cfg.job_auth is JobAuth.TOKEN:
            # Jobs get a token (or, reading a local copy, need nothing): never the password.
            os.environ.pop(PASSWORD_ENV, None)
            bearer_token.move_out_of_environment()

    @property
    def is_job(self) -> bool:
        return self.cfg.job_credential is not None

    @property
    def issues_credentials(self) -> bool:
        return not self.is_job and self.cfg.job_auth is JobAuth.TOKEN and \
            self.cfg.local_copy is None

    def run_id(self) -> str | None:
        """The submitting process's run id, in a job that has its credential."""
        return self._credential.run_id if self._credential else None

    def workflow(self) -> str | None:
        """The submitting process's workflow name (a job's own directory is a sandbox)."""
        return self._credential.workflow if self._credential else None

    def journal_id(self, run_id: str) -> str:
        """Each process writes its own journal; a job's file names its run and itself."""
        return f"{run_id}-job-{secrets.token_hex(3)}" if self.is_job else run_id

    def connect(self, run_id: str) -> RucioAdapter:
        cfg = self.cfg
        if cfg.job_credential is not None:
            credential = self._credential or jc.read(cfg.job_credential)
            jc.install(credential)
            return RucioAdapter.connect(None, credential.account, timeout=cfg.rucio_timeout)
        adapter = RucioAdapter.connect(cfg.rucio_config, cfg.account, cfg.auth_type,
                                       cfg.username, cfg.password, timeout=cfg.rucio_timeout)
        if self.issues_credentials:
            self._issue(adapter, run_id)
        return adapter

    def _issue(self, adapter: RucioAdapter, run_id: str) -> None:
        """Write the jobs' credential under the working directory and tell jobs where it is."""
        from rucio.common.config import config_get

        def option(name: str) -> str | None:
            value = config_get("client", name, raise_exception=False, default=None,
                               check_config_table=False)
            return str(value) if value else None

        config_file = Path(os.environ.get("RUCIO_CONFIG", "")) if os.environ.get(
            "RUCIO_CONFIG") else None
        public = jc.public_config(config_file) if config_file and config_file.is_file() else {}
        client = adapter.client
        auth_type = str(client.auth_type)
        proxy_path = os.environ.get("X509_USER_PROXY")
        proxy = Path(proxy_path).read_text() if proxy_path and Path(proxy_path).is_file() \
            else None
        auth_host = str(getattr(client, "auth_host", None) or option("auth_host"))
        ca = str(client.ca_cert) if isinstance(getattr(client, "ca_cert", None), str) else True

        bearer = auth_type == TOKEN_MODE

        def issue() -> jc.JobCredential:
            if bearer:
                found = bearer_token.current()
                token = found.value
                expires = found.expires_at or time.time() + OPAQUE_TOKEN_RECHECK
            else:
                token, expires = jc.request_token(
                    auth_host, adapter.account, auth_type,
                    self.cfg.username or option("username"),
                    self.cfg.password or option("password"), proxy_path, ca,
                    self.cfg.rucio_timeout)
            public.setdefault("client", {}).update(
                {"rucio_host": str(client.host), "auth_host": auth_host,
                 "auth_type": auth_type, "account": adapter.account})
            return jc.JobCredential(adapter.account, run_id, expires, public, token, proxy,
                                    workflow=workflow, bearer=bearer)

        path = (Path.cwd() / jc.DEFAULT_PATH).resolve()
        workflow = Path.cwd().name
        first = issue()
        jc.write(first, path)
        self._renewer = jc.Renewer(issue, path, first)
        # Batch jobs and spawned jobs get the path through the environment (a path, not a
        # secret); HTCondor jobs through their profile's `environment` (a relative path).
        os.environ[CREDENTIAL_ENV] = str(path)

"""Settings of the `datalake` storage plugin: `--storage-datalake-<name>` on the command line,
`storage-datalake-<name>` in a profile, `SNAKEMAKE_STORAGE_DATALAKE_<NAME>` for those marked
env_var (the secrets must come from there)."""

# No `from __future__ import annotations`: Snakemake reads the field types at run time to convert
# command line strings.
from dataclasses import dataclass, field, fields
from pathlib import Path

from snakemake_interface_common.exceptions import ApiError
from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase

from datalake_core.settings import (
    DEFAULT_FTS_ATTEMPTS,
    DEFAULT_FTS_BACKOFF,
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_MAX_TRANSFERS,
    DEFAULT_RUCIO_TIMEOUT,
    DEFAULT_RULE_LIFETIME,
    DEFAULT_STAGE_TIMEOUT,
    ProviderConfig,
    SettingsError,
)

PREFIX = "--storage-datalake-"
SECRETS = ("password", "fts_token")


def _meta(help: str, env_var: bool = False, **extra: object) -> dict[str, object]:
    return {"help": help, "env_var": env_var, "required": False, **extra}


@dataclass
class StorageProviderSettings(StorageProviderSettingsBase):
    rucio_config: Path | None = field(default=None, metadata=_meta(
        "Rucio client configuration file (default: $RUCIO_CONFIG, then Rucio's own search).",
        type=Path))
    account: str | None = field(default=None, metadata=_meta(
        "Rucio account (default: from the Rucio configuration)."))
    auth_type: str | None = field(default=None, metadata=_meta(
        "Rucio authentication type, e.g. userpass, x509_proxy, oidc (default: from the Rucio "
        "configuration)."))
    username: str | None = field(default=None, metadata=_meta(
        "User name for userpass authentication (default: from the Rucio configuration)."))
    password: str | None = field(default=None, repr=False, metadata=_meta(
        "Password for userpass authentication; only from the environment variable. Jobs "
        "Snakemake starts get it by inheriting the environment, never on a command line.",
        env_var=True))
    site_rse: str | None = field(default=None, metadata=_meta(
        "The RSE (or RSE expression) of the site the jobs run at: replicas there are used in "
        "place, and the rule/fts policies stage inputs to it."))
    stage_policy: str | None = field(default="download", metadata=_meta(
        "How inputs missing at the site are obtained: 'rule' (a Rucio rule to the site RSE), "
        "'fts' (FTS jobs submitted by Snakemake, then registered), 'download' (read the best "
        "remote replica directly)."))
    rule_lifetime: int | None = field(default=DEFAULT_RULE_LIFETIME, metadata=_meta(
        "Lifetime in seconds of the rules made to stage inputs to the site.", type=int))
    fts_endpoint: str | None = field(default=None, metadata=_meta(
        "FTS server for the fts policy (default: the site RSE's `fts` attribute)."))
    fts_token: str | None = field(default=None, repr=False, metadata=_meta(
        "Bearer token for FTS (default: X.509 proxy over https, anonymous over http); only from "
        "the environment variable, which jobs Snakemake starts inherit (it is never put on a "
        "command line).", env_var=True))
    max_concurrent_transfers: int | None = field(default=DEFAULT_MAX_TRANSFERS, metadata=_meta(
        "How many files are read or copied at the same time.", type=int))
    output_rse: str | None = field(default=None, metadata=_meta(
        "The RSE outputs are uploaded to."))
    output_dataset: str | None = field(default=None, metadata=_meta(
        "Dataset outputs are attached to (created if missing); may use {scope}, {workflow}, "
        "{date}, {run} (default: {scope}:snakemake/{workflow}/{date})."))
    output_rules: str | None = field(default=None, metadata=_meta(
        "Replication rules added to every output: COPIES:RSE_EXPRESSION[:LIFETIME] separated "
        "by ';'."))
    output_metadata: str | None = field(default=None, metadata=_meta(
        "DID metadata set on every output (besides provenance): KEY=VALUE separated by ','."))
    mounts: str | None = field(default=None, metadata=_meta(
        "Storage mounted on this machine, for zero-copy access: RSE_OR_PFN_PREFIX=/local/dir "
        "separated by ','."))
    link_mode: str | None = field(default="symlink", metadata=_meta(
        "How a replica at the site that is a local file is made available: symlink, hardlink "
        "or copy."))
    ca_bundle: Path | None = field(default=None, metadata=_meta(
        "CA certificates for https to storage and FTS (default: the system's).", env_var=True,
        type=Path))
    insecure_no_tls_verify: bool = field(default=False, metadata=_meta(
        "Do not verify TLS certificates of storage and FTS (insecure; for debugging only)."))
    stage_timeout: int | None = field(default=DEFAULT_STAGE_TIMEOUT, metadata=_meta(
        "Seconds to wait for a rule or FTS job staging inputs.", type=int))
    http_timeout: int | None = field(default=DEFAULT_HTTP_TIMEOUT, metadata=_meta(
        "Seconds without data after which an https read is abandoned.", type=int))
    rucio_timeout: int | None = field(default=DEFAULT_RUCIO_TIMEOUT, metadata=_meta(
        "Seconds to wait for each answer of the Rucio server; a server that does not answer in "
        "time (or cannot be reached) fails the run with an error naming the server, instead of "
        "hanging (Rucio's own default is 600).", type=int))
    verify_site_replicas: str | None = field(default="adler32", metadata=_meta(
        "How a replica at the site is checked before it is linked: 'adler32' reads it whole "
        "(catches silent corruption), 'size' only compares its size (a link then costs "
        "nothing; for storage the site trusts). Copies are always checksummed."))
    fts_attempts: int | None = field(default=DEFAULT_FTS_ATTEMPTS, metadata=_meta(
        "Policy fts: FTS jobs per file before staging gives up on it (FTS's own retries are "
        "off, so this is the bound).", type=int))
    fts_retry_backoff: int | None = field(default=DEFAULT_FTS_BACKOFF, metadata=_meta(
        "Policy fts: seconds before the second attempt of a failed copy, doubled before each "
        "next one; no attempt starts after the stage timeout.", type=int))
    no_stage_ahead: bool = field(default=False, metadata=_meta(
        "Stage only the inputs of the jobs about to run, not all inputs of the workflow that "
        "are not at the site yet, when the first input is staged."))
    prefetch_limit: int | None = field(default=10000, metadata=_meta(
        "At most this many DIDs matching one input pattern are resolved in bulk ahead of use "
        "(0: no pattern listing).", type=int))
    local_copy: Path | None = field(default=None, metadata=_meta(
        "A directory holding a local copy of the DataLake files (<dir>/<scope>/<name>, as "
        "made by `lofar-datalake compare`): inputs are read from it and outputs written to "
        "it; Rucio and FTS are not contacted.", type=Path))

    job_auth: str | None = field(default="token", metadata=_meta(
        "What the jobs this Snakemake submits (batch jobs, spawned jobs) authenticate with: "
        "'token' (a short-lived Rucio token this process obtains and writes to a private file "
        "that jobs find; they never see the password) or 'inherit' (they log in as this "
        "process does, the password reaching them through the environment)."))
    job_credential: Path | None = field(default=None, metadata=_meta(
        "Set by the submitting Snakemake for its jobs, not by users: the path of the job "
        "credential file (a Rucio token, no password); jobs without a shared file system find "
        "it by the same relative path in their sandbox.", env_var=True, type=Path))

    def __post_init__(self) -> None:
        # Snakemake hands the env-var settings of a spawned job (a `run:` or `script:` job,
        # a cluster job) to it as `export NAME='value' && python -m snakemake ...`: a command
        # line anyone on the machine can read with ps. The secrets are kept off the fields it
        # reads; the job inherits them from the environment they came from.
        self._secrets: dict[str, str | None] = {name: getattr(self, name) for name in SECRETS}
        for name in SECRETS:
            setattr(self, name, None)
        # Checked as soon as Snakemake has read its command line and profile, before the
        # Snakefile: a bad value stops the run with one line naming the option. ApiError is what
        # Snakemake prints as "Error: <message>" without a traceback.
        try:
            self.config()
        except SettingsError as exc:
            raise ApiError(describe(exc)) from None

    def values(self) -> dict[str, object]:
        """Every setting by name, the secrets included."""
        values: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in self._secrets.items() if v is not None})
        return values

    def config(self) -> ProviderConfig:
        """The settings as the provider's typed configuration (SettingsError if invalid)."""
        return ProviderConfig.parse(self.values())


def describe(exc: SettingsError) -> str:
    return f"datalake storage plugin: {PREFIX}{exc.setting}: {exc.reason}"

"""The provider's configuration as typed values, parsed from the plain strings Snakemake passes.

Snakemake storage settings are single strings per option (tagged values rule out lists), so the
structured ones have small textual forms, parsed and validated here once, at start-up:

- mounts:        `SITE_A_DISK=/mnt/a,https://dav.example.org:443/=/mnt/dav/` (RSE name or PFN
                 prefix = local directory where that storage is mounted)
- output rules:  `2:tier=disk:86400;1:SITE_C_DAV` (copies:RSE expression[:lifetime seconds])
- metadata:      `project=LOFAR2,campaign=cycle21` (DID metadata set on every output)

Every setting is declared once, in SETTINGS (name, type, default, help, environment variable,
secret or not); the plugin's settings class, ProviderConfig with its defaults and parsing, and
the settings table of the plugin's README are all derived from it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .setting_values import (
    JobAuth as JobAuth,
)
from .setting_values import (
    LinkMode as LinkMode,
)
from .setting_values import (
    Mount as Mount,
)
from .setting_values import (
    OutputRule as OutputRule,
)
from .setting_values import (
    SiteVerify as SiteVerify,
)
from .setting_values import (
    StagePolicy as StagePolicy,
)
from .setting_values import (
    parse_enum as parse_enum,
)
from .setting_values import (
    parse_flag as parse_flag,
)
from .setting_values import (
    parse_metadata as parse_metadata,
)
from .setting_values import (
    parse_mounts as parse_mounts,
)
from .setting_values import (
    parse_output_rules as parse_output_rules,
)

CLI_PREFIX = "--storage-datalake-"  # Snakemake's name for the options of plugin `datalake`
ENV_PREFIX = "SNAKEMAKE_STORAGE_DATALAKE_"


# --- The settings, declared once ------------------------------------------------------------
# Each setting is one `Setting` in SETTINGS below; from it come the plugin's settings class
# (snakemake_storage_plugin_datalake.settings), ProviderConfig and its parsing here, the
# settings `lofar-datalake compare` reads from profiles, and the table in plugin/README.md.

Convert = Callable[["Setting", Any], Any]


@dataclass(frozen=True)
class Setting:
    """One plugin setting: `--storage-datalake-<name>`, a profile's `storage-datalake-<name>`,
    and `SNAKEMAKE_STORAGE_DATALAKE_<NAME>` if `env_var`."""

    name: str
    kind: type  # str, int, bool, Path, or a StrEnum whose values are the choices
    default: str | int | bool | None
    help: str
    minimum: int | None = None  # for integers
    convert: Convert | None = None  # plain value -> typed value; None: by `kind`
    config_field: str | None = None  # its ProviderConfig field, where named otherwise
    env_var: bool = False
    secret: bool = False  # only from the environment, never in a repr or on a command line
    required: bool = False
    internal: bool = False  # set by the submitting Snakemake for its jobs, not by users

    @property
    def config_name(self) -> str:
        return self.config_field or self.name

    @property
    def option(self) -> str:
        return CLI_PREFIX + self.name.replace("_", "-")

    @property
    def env_name(self) -> str | None:
        return ENV_PREFIX + self.name.upper() if self.env_var else None

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(m.value for m in self.kind) if issubclass(self.kind, enum.StrEnum) else ()

    @property
    def value_type(self) -> type:
        """What Snakemake converts the command line string to."""
        return str if self.choices else self.kind

    def parse(self, value: Any) -> Any:
        """The typed value ProviderConfig holds, from a plain one (None: the default)."""
        convert = self.convert or (_choice if self.choices else _CONVERT_BY_KIND[self.kind])
        return convert(self, self.default if value is None else value)


def _text(setting: Setting, value: Any) -> str | None:
    return _text_value(value)


def _choice(setting: Setting, value: Any) -> enum.StrEnum:
    return parse_enum(setting.kind, setting.name, _text_value(value),
                      setting.kind(setting.default))


def _text_value(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _integer(setting: Setting, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(setting.name, f"{value!r} is not an integer") from None
    if setting.minimum is not None and number < setting.minimum:
        raise SettingsError(setting.name, f"must be at least {setting.minimum}")
    return number


def _path(setting: Setting, value: Any) -> Path | None:
    return Path(os.path.expanduser(str(value))) if value else None


def _flag(setting: Setting, value: Any) -> bool:
    return parse_flag(setting.name, value)


def _negated_flag(setting: Setting, value: Any) -> bool:
    return not parse_flag(setting.name, value)


def _as_given(setting: Setting, value: Any) -> Any:
    return value  # a secret: not stripped or otherwise touched


def _ca_bundle(setting: Setting, value: Any) -> Path | None:
    path = _path(setting, value)
    if path is not None and not path.is_file():
        raise SettingsError(setting.name, f"{path} is not a file (PEM CA certificates)")
    return path


def _structured(parse: Callable[[str | None], Any]) -> Convert:
    return lambda setting, value: parse(_text_value(value))


_CONVERT_BY_KIND: dict[type, Convert] = {int: _integer, bool: _flag, Path: _path, str: _text}

SETTINGS: tuple[Setting, ...] = (
    Setting("rucio_config", Path, None,
            "Rucio client configuration file (default: $RUCIO_CONFIG, then Rucio's own "
            "search)."),
    Setting("account", str, None, "Rucio account (default: from the Rucio configuration)."),
    Setting("auth_type", str, None,
            "Rucio authentication type, e.g. userpass, x509_proxy, or oidc: token mode, where "
            "Rucio, storage and FTS get the WLCG bearer token an agent keeps fresh "
            "($BEARER_TOKEN_FILE, ...; read again before each request) (default: "
            "$RUCIO_AUTH_TYPE, then the Rucio configuration)."),
    Setting("username", str, None,
            "User name for userpass authentication (default: from the Rucio configuration)."),
    Setting("password", str, None,
            "Password for userpass authentication; only from the environment variable. Jobs "
            "Snakemake starts get it by inheriting the environment, never on a command line.",
            convert=_as_given, env_var=True, secret=True),
    Setting("site_rse", str, None,
            "The RSE (or RSE expression) of the site the jobs run at: replicas there are used in "
            "place, and the rule/fts policies stage inputs to it."),
    Setting("stage_policy", StagePolicy, StagePolicy.DOWNLOAD.value,
            "How inputs missing at the site are obtained: 'rule' (a Rucio rule to the site RSE), "
            "'fts' (FTS jobs submitted by Snakemake, then registered), 'download' (read the best "
            "remote replica directly)."),
    Setting("rule_lifetime", int, 7 * 24 * 3600,
            "Lifetime in seconds of the rules made to stage inputs to the site.", minimum=60),
    Setting("recall_lifetime", int, 24 * 3600,
            "Lifetime in seconds of the rules that recall tape-only inputs to the tape RSE's "
            "staging area, used when the policy does not stage to one site RSE (FTS pins the "
            "file on tape as long, and nothing releases the pin earlier); each rule is deleted "
            "once its file is made local. With the rule or fts policy, files are recalled "
            "straight to the site RSE, under rule_lifetime, and unpinned once copied.",
            minimum=60),
    Setting("recall_files_per_request", int, 1000,
            "Recall window: at most this many files per recall request (one Rucio call); the "
            "LOFAR LTA takes at most 1,000.", minimum=1),
    Setting("recall_files_in_flight", int, 5000,
            "Recall window: at most this many files requested from tape and not online yet "
            "(the LOFAR LTA's limit).", minimum=1),
    Setting("recall_bytes_in_flight", int, 5 * 10**12,
            "Recall window: at most this many bytes requested from tape and not online yet "
            "(the LOFAR LTA's 5 TB); a larger file is requested alone.", minimum=1),
    Setting("fts_endpoint", str, None,
            "FTS server for the fts policy (default: the site RSE's `fts` attribute)."),
    Setting("fts_token", str, None,
            "Bearer token for FTS (default: in token mode the discovered one, else the X.509 "
            "proxy over https, anonymous over http); only "
            "from the environment variable, which jobs Snakemake starts inherit (it is never put "
            "on a command line).", convert=_as_given, env_var=True, secret=True),
    Setting("max_concurrent_transfers", int, 4,
            "How many files are read or copied at the same time.", minimum=1),
    Setting("output_rse", str, None, "The RSE outputs are uploaded to."),
    Setting("output_dataset", str, None,
            "Dataset outputs are attached to (created if missing); may use {scope}, {workflow}, "
            "{date}, {run} (default: {scope}:snakemake/{workflow}/{date})."),
    Setting("output_rules", str, None,
            "Replication rules added to every output: COPIES:RSE_EXPRESSION[:LIFETIME] separated "
            "by ';'.", convert=_structured(parse_output_rules)),
    Setting("output_lifetime", int, 0,
            "Lifetime in seconds of the rule that keeps each new output on the output RSE, for "
            "scratch products such as health probes' (0: none; kept until the rule is removed).",
            minimum=0),
    Setting("output_metadata", str, None,
            "DID metadata set on every output (besides provenance): KEY=VALUE separated by ','.",
            convert=_structured(parse_metadata)),
    Setting("mounts", str, None,
            "Storage mounted on this machine, for zero-copy access: RSE_OR_PFN_PREFIX=/local/dir "
            "separated by ','.", convert=_structured(parse_mounts)),
    Setting("link_mode", LinkMode, LinkMode.SYMLINK.value,
            "How a replica at the site that is a local file is made available: symlink, hardlink "
            "or copy."),
    Setting("ca_bundle", Path, None,
            "CA certificates for https to storage and FTS (default: the system's).",
            convert=_ca_bundle, env_var=True),
    Setting("insecure_no_tls_verify", bool, False,
            "Do not verify TLS certificates of storage and FTS (insecure; for debugging only).",
            convert=_negated_flag, config_field="tls_verify"),
    Setting("stage_timeout", int, 3600,
            "Seconds to wait for a rule or FTS job staging inputs.", minimum=1),
    Setting("http_timeout", int, 60,
            "Seconds without data after which an https read is abandoned.", minimum=1),
    # Rucio's client waits 600 s for an answer by default: far too long for a workflow to notice
    # that the server is gone; a bulk pass over 10,000 DIDs takes ~10 s on a busy server.
    Setting("rucio_timeout", int, 120,
            "Seconds to wait for each answer of the Rucio server; a server that does not answer "
            "in time (or cannot be reached) fails the run with an error naming the server, "
            "instead of hanging (Rucio's own default is 600).", minimum=1),
    Setting("verify_site_replicas", SiteVerify, SiteVerify.ADLER32.value,
            "How a replica at the site is checked before it is linked: 'adler32' reads it whole "
            "(catches silent corruption), 'size' only compares its size (a link then costs "
            "nothing; for storage the site trusts). Copies are always checksummed."),
    Setting("fts_attempts", int, 3,
            "Policy fts: FTS jobs per file before staging gives up on it (FTS's own retries are "
            "off, so this is the bound).", minimum=1),
    Setting("fts_retry_backoff", int, 5,
            "Policy fts: seconds before the second attempt of a failed copy, doubled before each "
            "next one; no attempt starts after the stage timeout.", minimum=0),
    Setting("no_stage_ahead", bool, False,
            "Stage only the inputs of the jobs about to run, not all inputs of the workflow that "
            "are not at the site yet, when the first input is staged.",
            convert=_negated_flag, config_field="stage_ahead"),
    Setting("prefetch_limit", int, 10000,
            "At most this many DIDs matching one input pattern are resolved in bulk ahead of use "
            "(0: no pattern listing).", minimum=0),
    Setting("local_copy", Path, None,
            "A directory holding a local copy of the DataLake files (<dir>/<scope>/<name>, as "
            "made by `lofar-datalake compare`): inputs are read from it and outputs written to "
            "it; Rucio and FTS are not contacted."),
    Setting("job_auth", JobAuth, JobAuth.TOKEN.value,
            "What the jobs this Snakemake submits (batch jobs, spawned jobs) authenticate with: "
            "'token' (a short-lived Rucio token this process obtains, or in token mode the user's "
            "bearer token, written to a private file that jobs find and renewed at half its "
            "lifetime; they never see the password) or 'inherit' (they log in as this process "
            "does, the password reaching them through the environment)."),
    Setting("job_credential", Path, None,
            "Set by the submitting Snakemake for its jobs, not by users: the path of the job "
            "credential file (a Rucio or bearer token, no password); jobs without a shared file "
            "system "
            "find it by the same relative path in their sandbox.", env_var=True, internal=True),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def default(name: str) -> Any:
    """The declared default of a setting, as Snakemake passes it."""
    return BY_NAME[name].default


# Named for the modules and tests that speak of them.
DEFAULT_RUCIO_TIMEOUT: int = default("rucio_timeout")
DEFAULT_FTS_ATTEMPTS: int = default("fts_attempts")
DEFAULT_FTS_BACKOFF: int = default("fts_retry_backoff")


def _defaults_from_settings(cls: type) -> type:
    """Applied before @dataclass: each field gets its setting's typed default, secrets are kept
    out of the repr, and a field without a setting (or a setting without a field) fails at
    import rather than going unparsed."""
    by_field = {s.config_name: s for s in SETTINGS}
    if set(cls.__annotations__) != set(by_field):
        raise TypeError(f"{cls.__name__} and SETTINGS differ: "
                        f"{sorted(set(cls.__annotations__) ^ set(by_field))}")
    for name in cls.__annotations__:
        setting = by_field[name]
        setattr(cls, name, field(default=setting.parse(None), repr=not setting.secret))
    return cls


@dataclass(frozen=True)
@_defaults_from_settings
class ProviderConfig:
    """The settings as typed values; defaults and parsing come from SETTINGS."""

    rucio_config: Path | None
    account: str | None
    auth_type: str | None
    username: str | None
    password: str | None
    site_rse: str | None  # an RSE name or an RSE expression
    stage_policy: StagePolicy
    rule_lifetime: int
    recall_lifetime: int
    recall_files_per_request: int
    recall_files_in_flight: int
    recall_bytes_in_flight: int
    fts_endpoint: str | None
    fts_token: str | None
    max_concurrent_transfers: int
    output_rse: str | None
    output_dataset: str | None
    output_rules: tuple[OutputRule, ...]
    output_lifetime: int
    output_metadata: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    link_mode: LinkMode
    ca_bundle: Path | None
    tls_verify: bool
    stage_timeout: float
    http_timeout: float
    rucio_timeout: float
    fts_attempts: int
    verify_site_replicas: SiteVerify
    fts_retry_backoff: float
    stage_ahead: bool
    prefetch_limit: int
    local_copy: Path | None
    job_auth: JobAuth
    job_credential: Path | None  # set in jobs: the submit host's short-lived credential

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ProviderConfig:
        """From the plugin's settings (names as there, values as Snakemake passes them)."""
        values = {s.config_name: s.parse(raw.get(s.name)) for s in SETTINGS}
        rucio_config, job_credential = values["rucio_config"], values["job_credential"]
        # A job with a credential from its submit host uses that, not the Rucio configuration
        # (which a worker without a shared file system does not have).
        if job_credential is None and rucio_config is not None and not rucio_config.is_file():
            raise SettingsError("rucio_config", f"{rucio_config} is not a file")
        return cls(**values)

    def site_is_expression(self) -> bool:
        return self.site_rse is not None and any(c in self.site_rse for c in "=&|\\()")

    def tls(self) -> str | bool:
        """What `requests` gets as `verify`: a CA bundle, the system store, or (only when
        explicitly asked for) nothing."""
        if not self.tls_verify:
            return False
        return str(self.ca_bundle) if self.ca_bundle else True

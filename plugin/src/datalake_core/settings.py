"""The provider's configuration as typed values, parsed from the plain strings Snakemake passes.

Snakemake storage settings are single strings per option (tagged values rule out lists), so the
structured ones have small textual forms, parsed and validated here once, at start-up:

- mounts:        `SITE_A_DISK=/mnt/a,https://dav.example.org:443/=/mnt/dav/` (RSE name or PFN
                 prefix = local directory where that storage is mounted)
- output rules:  `2:tier=disk:86400;1:SITE_C_DAV` (copies:RSE expression[:lifetime seconds])
- metadata:      `project=LOFAR2,campaign=cycle21` (DID metadata set on every output)
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RULE_LIFETIME = 7 * 24 * 3600
DEFAULT_MAX_TRANSFERS = 4
DEFAULT_STAGE_TIMEOUT = 3600
DEFAULT_HTTP_TIMEOUT = 60
# Rucio's client waits 600 s for an answer by default: far too long for a workflow to notice that
# the server is gone; a bulk pass over 10,000 DIDs takes ~10 s on a busy server.
DEFAULT_RUCIO_TIMEOUT = 120
DEFAULT_FTS_ATTEMPTS = 3  # FTS jobs per file before policy `fts` gives up on it
DEFAULT_FTS_BACKOFF = 5  # seconds before the second attempt; doubled before each next one


class SettingsError(ValueError):
    """A setting has a value the provider cannot use; the message names the setting."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting.replace("_", "-")  # as in --storage-datalake-<setting>
        self.reason = reason
        super().__init__(f"{self.setting}: {reason}")


class StagePolicy(enum.StrEnum):
    RULE = "rule"  # a Rucio rule to the site RSE; Rucio's conveyor drives FTS
    FTS = "fts"  # the provider submits FTS jobs itself and registers the new replicas
    DOWNLOAD = "download"  # read the best remote replica directly into the local copy


class SiteVerify(enum.StrEnum):
    ADLER32 = "adler32"  # read the whole replica before linking it: catches silent corruption
    SIZE = "size"  # one stat: links cost nothing, for storage the site trusts


class JobAuth(enum.StrEnum):
    TOKEN = "token"  # noqa: S105  (a mode, not a secret)
    INHERIT = "inherit"


class LinkMode(enum.StrEnum):
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    COPY = "copy"


@dataclass(frozen=True)
class OutputRule:
    copies: int
    rse_expression: str
    lifetime: int | None = None


@dataclass(frozen=True)
class Mount:
    """Where a storage is visible on this machine: `key` is an RSE name or a PFN prefix."""

    key: str
    local: Path

    @property
    def is_prefix(self) -> bool:
        return "://" in self.key


@dataclass(frozen=True)
class ProviderConfig:
    rucio_config: Path | None = None
    account: str | None = None
    auth_type: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    site_rse: str | None = None  # an RSE name or an RSE expression
    stage_policy: StagePolicy = StagePolicy.DOWNLOAD
    rule_lifetime: int = DEFAULT_RULE_LIFETIME
    fts_endpoint: str | None = None
    fts_token: str | None = field(default=None, repr=False)
    max_concurrent_transfers: int = DEFAULT_MAX_TRANSFERS
    output_rse: str | None = None
    output_dataset: str | None = None
    output_rules: tuple[OutputRule, ...] = ()
    output_metadata: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    link_mode: LinkMode = LinkMode.SYMLINK
    ca_bundle: Path | None = None
    tls_verify: bool = True
    stage_timeout: float = DEFAULT_STAGE_TIMEOUT
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    rucio_timeout: float = DEFAULT_RUCIO_TIMEOUT
    fts_attempts: int = DEFAULT_FTS_ATTEMPTS
    verify_site_replicas: SiteVerify = SiteVerify.ADLER32
    fts_retry_backoff: float = DEFAULT_FTS_BACKOFF
    stage_ahead: bool = True
    prefetch_limit: int = 10000
    local_copy: Path | None = None
    job_auth: JobAuth = JobAuth.TOKEN
    job_credential: Path | None = None  # set in jobs: the submit host's short-lived credential

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ProviderConfig:
        """From the plugin's settings (names as there, values as Snakemake passes them)."""
        def num(name: str, default: int, minimum: int) -> int:
            value = raw.get(name)
            try:
                value = default if value is None else int(value)
            except (TypeError, ValueError):
                raise SettingsError(name, f"{value!r} is not an integer") from None
            if value < minimum:
                raise SettingsError(name, f"must be at least {minimum}")
            return value

        def path(name: str) -> Path | None:
            value = raw.get(name)
            return Path(os.path.expanduser(str(value))) if value else None

        def text(name: str) -> str | None:
            value = raw.get(name)
            return str(value).strip() or None if value is not None else None

        ca_bundle = path("ca_bundle")
        if ca_bundle is not None and not ca_bundle.is_file():
            raise SettingsError("ca_bundle", f"{ca_bundle} is not a file (PEM CA certificates)")
        rucio_config = path("rucio_config")
        job_credential = path("job_credential")
        # A job with a credential from its submit host uses that, not the Rucio configuration
        # (which a worker without a shared file system does not have).
        if job_credential is None and rucio_config is not None and not rucio_config.is_file():
            raise SettingsError("rucio_config", f"{rucio_config} is not a file")
        return cls(
            rucio_config=rucio_config, account=text("account"),
            auth_type=text("auth_type"), username=text("username"), password=raw.get("password"),
            site_rse=text("site_rse"),
            stage_policy=parse_enum(StagePolicy, "stage-policy", text("stage_policy"),
                                    StagePolicy.DOWNLOAD),  # type: ignore[arg-type]
            rule_lifetime=num("rule_lifetime", DEFAULT_RULE_LIFETIME, 60),
            fts_endpoint=text("fts_endpoint"), fts_token=raw.get("fts_token"),
            max_concurrent_transfers=num("max_concurrent_transfers", DEFAULT_MAX_TRANSFERS, 1),
            output_rse=text("output_rse"), output_dataset=text("output_dataset"),
            output_rules=parse_output_rules(text("output_rules")),
            output_metadata=parse_metadata(text("output_metadata")),
            mounts=parse_mounts(text("mounts")),
            link_mode=parse_enum(LinkMode, "link-mode", text("link_mode"),
                                 LinkMode.SYMLINK),  # type: ignore[arg-type]
            ca_bundle=ca_bundle,
            tls_verify=not parse_flag("insecure_no_tls_verify", raw.get("insecure_no_tls_verify")),
            stage_timeout=num("stage_timeout", DEFAULT_STAGE_TIMEOUT, 1),
            http_timeout=num("http_timeout", DEFAULT_HTTP_TIMEOUT, 1),
            rucio_timeout=num("rucio_timeout", DEFAULT_RUCIO_TIMEOUT, 1),
            fts_attempts=num("fts_attempts", DEFAULT_FTS_ATTEMPTS, 1),
            verify_site_replicas=parse_enum(SiteVerify, "verify-site-replicas",
                                            text("verify_site_replicas"),
                                            SiteVerify.ADLER32),  # type: ignore[arg-type]
            fts_retry_backoff=num("fts_retry_backoff", DEFAULT_FTS_BACKOFF, 0),
            stage_ahead=not parse_flag("no_stage_ahead", raw.get("no_stage_ahead")),
            prefetch_limit=num("prefetch_limit", 10000, 0),
            local_copy=path("local_copy"),
            job_auth=parse_enum(JobAuth, "job-auth", text("job_auth"),
                                JobAuth.TOKEN),  # type: ignore[arg-type]
            job_credential=job_credential,
        )

    def site_is_expression(self) -> bool:
        return self.site_rse is not None and any(c in self.site_rse for c in "=&|\\()")

    def tls(self) -> str | bool:
        """What `requests` gets as `verify`: a CA bundle, the system store, or (only when
        explicitly asked for) nothing."""
        if not self.tls_verify:
            return False
        return str(self.ca_bundle) if self.ca_bundle else True


def parse_mounts(text: str | None) -> tuple[Mount, ...]:
    mounts = []
    for item in _items(text, ","):
        key, sep, local = item.rpartition("=")
        if not sep or not key or not local:
            raise SettingsError("mounts", f"{item!r} is not RSE_OR_PFN_PREFIX=/local/dir")
        path = Path(os.path.expanduser(local))
        if not path.is_absolute():
            raise SettingsError("mounts", f"{local!r} is not an absolute path")
        mounts.append(Mount(key, path))
    return tuple(mounts)


def parse_output_rules(text: str | None) -> tuple[OutputRule, ...]:
    rules = []
    for item in _items(text, ";"):
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise SettingsError("output_rules",
                                f"{item!r} is not COPIES:RSE_EXPRESSION[:LIFETIME]")
        try:
            copies = int(parts[0])
            lifetime = int(parts[2]) if len(parts) == 3 and parts[2] else None
        except ValueError as exc:
            raise SettingsError("output_rules",
                                f"{item!r}: copies and lifetime are integers") from exc
        if copies < 1 or not parts[1]:
            raise SettingsError("output_rules",
                                f"{item!r}: need copies >= 1 and an RSE expression")
        rules.append(OutputRule(copies, parts[1], lifetime))
    return tuple(rules)


def parse_metadata(text: str | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _items(text, ","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError("output_metadata", f"{item!r} is not KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def parse_flag(name: str, value: object) -> bool:
    """A boolean setting. Strict: the string "false" must not switch on what it names (such as
    insecure TLS), and anything unclear is an error rather than a guess."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0", ""):
        return False
    raise SettingsError(name, f"{value!r} is not true or false")


def parse_enum(kind: type[enum.StrEnum], name: str, value: str | None,
               default: enum.StrEnum) -> enum.StrEnum:
    if value is None:
        return default
    try:
        return kind(value.strip().lower())
    except ValueError as exc:
        choices = ", ".join(m.value for m in kind)
        raise SettingsError(name, f"{value!r} is not one of {choices}") from exc


def _items(text: str | None, sep: str) -> list[str]:
    return [part.strip() for part in (text or "").split(sep) if part.strip()]

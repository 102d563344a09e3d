"""The typed values of the provider's settings and their parsers: the policies as enums, mounts,
output rules and metadata from their small textual forms (see settings.py for the forms).
Each parser names the setting it refuses and why (SettingsError)."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SettingsError


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

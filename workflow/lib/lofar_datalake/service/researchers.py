"""The researchers file: who may log in, as which Rucio account, reading which scopes, within
which limits. Strict like the sites file: an unknown key or a wrong value names the key.

    researchers:
      alice:
        password_hash: "$argon2id$v=19$..."   # `lofar-datalake serve --hash-password`
        rucio_account: alice
        scopes: [user.alice]
        credential: /etc/lofar-datalake/alice.secret   # her Rucio password, mode 0600
        limits: {concurrent_runs: 1, wall_time_s: 3600}

Passwords are kept as argon2id hashes (argon2-cffi), never in clear. The credential file holds
the researcher's own Rucio secret: the service hands it to their runs only, through the
environment of the run's process, never on a command line or in a file the run keeps.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .model import Limits, Researcher
from .sandbox import NAME

KEYS = {"password_hash", "rucio_account", "scopes", "credential", "limits"}
LIMIT_KEYS = {f.name for f in fields(Limits)}
_HASHER = PasswordHasher()


class ResearchersFileError(ValueError):
    """The researchers file is not valid; the message names the file and the key."""


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(researcher: Researcher | None, password: str) -> bool:
    """Whether `password` is the researcher's. An unknown researcher costs a hash as well, so
    the answer's timing does not tell which logins exist."""
    try:
        return _HASHER.verify(researcher.password_hash if researcher else _DUMMY, password) \
            and researcher is not None
    except (VerificationError, InvalidHashError):
        return False


_DUMMY = _HASHER.hash("not a password anyone has")


def load(path: Path) -> dict[str, Researcher]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ResearchersFileError(f"researchers file {path}: {exc}") from exc
    try:
        return parse(data)
    except ResearchersFileError as exc:
        raise ResearchersFileError(f"researchers file {path}: {exc}") from None


def parse(data: Any) -> dict[str, Researcher]:
    if not isinstance(data, dict) or set(data) != {"researchers"} or not isinstance(
            data["researchers"], dict) or not data["researchers"]:
        raise ResearchersFileError("must be a mapping with one key, researchers, naming at "
                                   "least one researcher")
    return {str(name): _researcher(str(name), value)
            for name, value in data["researchers"].items()}


def _researcher(name: str, value: Any) -> Researcher:
    key = f"researchers.{name}"
    if not NAME.match(name):
        raise ResearchersFileError(f"{key}: a login is lower-case letters, digits, - and _, "
                                   "starting with a letter, at most 24 characters")
    fields_ = _mapping(value, key, KEYS)
    missing = sorted(KEYS - {"limits"} - set(fields_))
    if missing:
        raise ResearchersFileError(f"{key}: missing {', '.join(missing)}")
    scopes = fields_["scopes"]
    if not isinstance(scopes, list) or not scopes or not all(
            isinstance(s, str) and s for s in scopes):
        raise ResearchersFileError(f"{key}.scopes: must be a list of Rucio scopes, "
                                   f"got {scopes!r}")
    if not str(fields_["password_hash"]).startswith("$argon2"):
        raise ResearchersFileError(f"{key}.password_hash: not an argon2 hash (make one with "
                                   "`lofar-datalake serve --hash-password`)")
    credential = Path(str(fields_["credential"]))
    _check_credential(credential, f"{key}.credential")
    return Researcher(name, str(fields_["password_hash"]), str(fields_["rucio_account"]),
                      tuple(scopes), str(credential), _limits(fields_.get("limits", {}), key))


def _check_credential(path: Path, key: str) -> None:
    if not path.is_absolute():
        raise ResearchersFileError(f"{key}: must be an absolute path, got {path}")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ResearchersFileError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ResearchersFileError(f"{key}: {path} is readable by others (mode "
                                   f"{oct(mode & 0o777)}); make it 0600")


def _limits(value: Any, key: str) -> Limits:
    given = _mapping(value, f"{key}.limits", LIMIT_KEYS)
    for name, number in given.items():
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ResearchersFileError(f"{key}.limits.{name}: must be a whole number of at "
                                       f"least 1, got {number!r}")
    return Limits(**given)


def _mapping(value: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResearchersFileError(f"{key}: must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise ResearchersFileError(f"{key}: unknown key {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(allowed))})")
    return {str(k): v for k, v in value.items()}


def secret(researcher: Researcher) -> str:
    """The researcher's Rucio secret, read when a run starts (so a rotated file counts)."""
    return Path(researcher.credential).read_text().strip()


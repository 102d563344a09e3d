"""The researchers file: who may log in, as which Rucio account, reading which scopes, within
which limits. Strict like the sites file: an unknown key or a wrong value names the key.

    researchers:
      alice:
        password_hash: "$argon2id$v=19$..."   # `lofar-datalake serve --hash-password`
        rucio_account: alice
        scopes: [user.alice]
        credential: /etc/lofar-datalake/alice.secret   # her Rucio password, mode 0600
        limits: {concurrent_runs: 1, wall_time_s: 3600}
        oidc_subject: 6f1c...   # her `sub` at the OpenID issuer the service logs people in at
      bob:
        ...                     # as alice, but instead of a credential:
        token_client: {id: bob-runs, secret_file: /etc/lofar-datalake/bob.client-secret}

Passwords are kept as argon2id hashes (argon2-cffi), never in clear. A researcher has a
password_hash, an oidc_subject or both: the subject maps a login at the OpenID issuer (`serve
--oidc-issuer`, oidc.py) to this entry, and one subject names one researcher. The credential
file holds the researcher's own Rucio secret: the service hands it to their runs only, through
the environment of the run's process, never on a command line or in a file the run keeps.
Instead of a credential a researcher may have a token client: an OAuth client the DataLake's
IAM registered for them at the issuer (`serve --oidc-issuer`), its secret in a 0600 file; their
runs then get short-lived access tokens, never the secret (token_client.py).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .model import Limits, Researcher, TokenClient
from .sandbox import NAME

KEYS = {"password_hash", "rucio_account", "scopes", "credential", "limits", "oidc_subject",
        "token_client"}
# ... and password_hash or oidc_subject, and credential or token_client
REQUIRED = {"rucio_account", "scopes"}
TOKEN_CLIENT_KEYS = {"id", "secret_file"}
LIMIT_KEYS = {f.name for f in fields(Limits)}
_HASHER = PasswordHasher()


class ResearchersFileError(ValueError):
    """The researchers file is not valid; the message names the file and the key."""


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(researcher: Researcher | None, password: str) -> bool:
    """Whether `password` is the researcher's. An unknown researcher costs a hash as well, so
    the answer's timing does not tell which logins exist."""
    stored = researcher.password_hash if researcher is not None else ""
    try:  # a researcher without a password (OpenID only) costs a hash too, and never passes
        return _HASHER.verify(stored or _DUMMY, password) and bool(stored)
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
    found = {str(name): _researcher(str(name), value)
             for name, value in data["researchers"].items()}
    subjects: dict[str, str] = {}
    for name, researcher in found.items():
        if researcher.oidc_subject in subjects:
            raise ResearchersFileError(
                f"researchers.{name}.oidc_subject: {researcher.oidc_subject!r} already names "
                f"researchers.{subjects[researcher.oidc_subject]}; one person, one entry")
        if researcher.oidc_subject:
            subjects[researcher.oidc_subject] = name
    return found


def _researcher(name: str, value: Any) -> Researcher:
    key = f"researchers.{name}"
    if not NAME.match(name):
        raise ResearchersFileError(f"{key}: a login is lower-case letters, digits, - and _, "
                                   "starting with a letter, at most 24 characters")
    fields_ = _mapping(value, key, KEYS)
    missing = sorted(REQUIRED - set(fields_))
    if missing:
        raise ResearchersFileError(f"{key}: missing {', '.join(missing)}")
    if not {"password_hash", "oidc_subject"} & set(fields_):
        raise ResearchersFileError(f"{key}: missing password_hash or oidc_subject (how they "
                                   "log in: a password, the OpenID issuer, or both)")
    identities = {"credential", "token_client"} & set(fields_)
    if len(identities) != 1:
        raise ResearchersFileError(f"{key}: " + (
            "give credential or token_client, not both" if identities else
            "missing credential or token_client (how their runs reach Rucio: a password, or "
            "a token client at the DataLake's issuer)"))
    scopes = fields_["scopes"]
    if not isinstance(scopes, list) or not scopes or not all(
            isinstance(s, str) and s for s in scopes):
        raise ResearchersFileError(f"{key}.scopes: must be a list of Rucio scopes, "
                                   f"got {scopes!r}")
    if "password_hash" in fields_ and not str(fields_["password_hash"]).startswith("$argon2"):
        raise ResearchersFileError(f"{key}.password_hash: not an argon2 hash (make one with "
                                   "`lofar-datalake serve --hash-password`)")
    subject = fields_.get("oidc_subject", "")
    if "oidc_subject" in fields_ and not _is_subject(subject):
        raise ResearchersFileError(f"{key}.oidc_subject: must be the `sub` the OpenID issuer "
                                   "gives them: 1 to 255 printable ASCII characters, got "
                                   f"{subject!r}")
    credential = ""
    if "credential" in fields_:
        credential = str(Path(str(fields_["credential"])))
        _check_credential(Path(credential), f"{key}.credential")
    client = (_token_client(fields_["token_client"], f"{key}.token_client")
              if "token_client" in fields_ else None)
    return Researcher(name, str(fields_.get("password_hash", "")),
                      str(fields_["rucio_account"]), tuple(scopes), credential,
                      _limits(fields_.get("limits", {}), key), oidc_subject=subject,
                      token_client=client)


def _token_client(value: Any, key: str) -> TokenClient:
    given = _mapping(value, key, TOKEN_CLIENT_KEYS)
    missing = sorted(TOKEN_CLIENT_KEYS - set(given))
    if missing:
        raise ResearchersFileError(f"{key}: missing {', '.join(missing)}")
    if not isinstance(given["id"], str) or not given["id"].strip():
        raise ResearchersFileError(f"{key}.id: must be the client id the issuer registered, "
                                   f"got {given['id']!r}")
    if not isinstance(given["secret_file"], str):
        raise ResearchersFileError(f"{key}.secret_file: must be a path, got "
                                   f"{given['secret_file']!r}")
    secret_file = Path(given["secret_file"])
    _check_credential(secret_file, f"{key}.secret_file")
    return TokenClient(given["id"], str(secret_file))


def _is_subject(value: Any) -> bool:
    """OpenID Connect Core §2: `sub` is at most 255 ASCII characters (printable here)."""
    return isinstance(value, str) and 0 < len(value) <= 255 and all(
        " " <= c <= "~" for c in value)


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


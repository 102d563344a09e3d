"""Checking a provenance manifest before `reproduce` acts on it.

A manifest may come from the DataLake, where anyone with write access to its scope could have
stored it: it is untrusted input. Before anything is written or run, every part `reproduce`
uses is checked here, so that a hostile or broken manifest is refused with a `ManifestError`
naming the offending entry and leaves the output directory as it was:

- its structure: the `schema` string, and the type of every field that is read. Top-level keys
  this schema version does not define are refused (the `schema` string versions the format, so
  a manifest with other keys is not what it claims to be);
- every local path derived from it (embedded files, product paths, DIDs turned into
  `<scope>/<name>`) stays below the directory it is meant for: no absolute paths, `..` parts,
  NUL or control characters, or symbolic links leading out;
- each embedded file's content against its sha256;
- its config against the workflow's JSON schema (unknown keys named), and the config keys that
  name files point only at files restored from the manifest (or a strategy shipped with the
  workflow); `local.data_dir`, unread in a DataLake run, is set to a directory below the run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

from .manifest import EMBEDDED_KEYS, SCHEMA

WORKFLOW = Path(__file__).resolve().parents[3]  # workflow/lib/lofar_datalake/provenance
CONFIG_SCHEMA = WORKFLOW / "schemas" / "config.schema.yaml"
STRATEGIES = WORKFLOW / "strategies"
TOP_LEVEL = ("schema", "created", "run", "inputs", "local_inputs", "software", "config",
             "embedded", "outputs")
# As the observation sheet's schema allows for a DID: scope and name parts with a character
# other than a dot, '/' only between parts of the name.
_PART = r"[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*"
DID = re.compile(rf"^{_PART}:{_PART}(/{_PART})*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Config keys that name files: the run reads them, so they may only name restored files.
PATH_KEYS = ("observations", "truth", "calibration.skymodel", "flagging.strategy")
# What local.data_dir becomes: a DataLake run never reads it, and it then names nothing outside
# the reproduction's run directory.
UNREAD_DATA_DIR = "no-local-data"


class ManifestError(ValueError):
    """The manifest cannot be used; the message says what is wrong with it."""


def confined(root: Path, relative: object, what: str) -> Path:
    """`root / relative`, refused unless it is a plain relative path that stays below `root`
    (also through any symbolic links already there)."""
    if not isinstance(relative, str) or not relative:
        raise ManifestError(f"{what}: {relative!r} is not a relative path")
    if any(ord(c) < 32 or c in "\x7f\\" for c in relative):
        raise ManifestError(f"{what}: {relative!r} holds NUL, control or '\\' characters")
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        raise ManifestError(f"{what}: {relative!r} is an absolute path")
    if ".." in pure.parts:
        raise ManifestError(f"{what}: {relative!r} has a '..' part")
    path = root / pure
    if not path.resolve().is_relative_to(root.resolve()):
        raise ManifestError(f"{what}: {relative!r} leads out of {root} (a symbolic link)")
    return path


def did_path(root: Path, did: object, what: str) -> Path:
    """Where a DID is put below `root` (`<scope>/<name>`), the DID checked first."""
    if not isinstance(did, str) or not DID.match(did):
        raise ManifestError(f"{what}: {did!r} is not a DID (scope:name, no '.' or '..' parts)")
    scope, name = did.split(":", 1)
    return confined(root, f"{scope}/{name}", what)


def _need(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ManifestError(f"{what}: expected {names}, found {type(value).__name__}")
    return value


def check_structure(data: Any) -> dict[str, Any]:
    """The manifest, its fields that `reproduce` reads checked for type."""
    _need(data, dict, "manifest")
    if data.get("schema") != SCHEMA:
        raise ManifestError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
    unknown = sorted(str(k) for k in data if k not in TOP_LEVEL)
    if unknown:
        raise ManifestError(f"unknown top-level keys {unknown} (allowed: {', '.join(TOP_LEVEL)})")
    run = _need(data.get("run", {}), dict, "run")
    for key in ("ended", "host"):
        _need(run.get(key), (str, type(None)), f"run.{key}")
    _need(data.get("config"), dict, "config")
    for i, item in enumerate(_need(data.get("inputs", []), list, "inputs")):
        _need(item, dict, f"inputs[{i}]")
        _need(item.get("did"), str, f"inputs[{i}].did")
        _need(item.get("adler32"), (str, type(None)), f"inputs[{i}].adler32")
    for i, item in enumerate(_need(data.get("outputs", []), list, "outputs")):
        _need(item, dict, f"outputs[{i}]")
        _need(item.get("path"), str, f"outputs[{i}].path")
        _need(item.get("did"), (str, type(None)), f"outputs[{i}].did")
        if not isinstance(item.get("sha256"), str) or not SHA256.match(item["sha256"]):
            raise ManifestError(f"outputs[{i}].sha256: {item.get('sha256')!r} is not a sha256")
    for key, entry in _need(data.get("embedded", {}), dict, "embedded").items():
        if key not in EMBEDDED_KEYS:
            raise ManifestError(f"embedded {key!r}: not a file config key "
                                f"(allowed: {', '.join(EMBEDDED_KEYS)})")
        _need(entry, dict, f"embedded {key}")
        _need(entry.get("directory"), bool, f"embedded {key}.directory")
        for name, item in _need(entry.get("files"), dict, f"embedded {key}.files").items():
            _need(item, dict, f"embedded {key}/{name}")
            _need(item.get("content_b64"), str, f"embedded {key}/{name}.content_b64")
            _need(item.get("sha256"), str, f"embedded {key}/{name}.sha256")
    return dict(data)


@dataclass(frozen=True)
class Restored:
    """The embedded files, checked and decoded, ready to be written."""

    files: dict[Path, bytes]
    paths: dict[str, str]  # config key -> the restored file or directory

    def write(self) -> None:
        for dest, content in self.files.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)


def checked_embedded(manifest: Mapping[str, Any], target: Path) -> Restored:
    """All embedded files decoded and checked (place below `target`, sha256) before any is
    written."""
    files: dict[Path, bytes] = {}
    paths: dict[str, str] = {}
    for key, entry in manifest.get("embedded", {}).items():
        base = confined(target, key, f"embedded {key}")
        if not entry["directory"] and len(entry["files"]) != 1:
            raise ManifestError(f"embedded {key}: one file expected, {len(entry['files'])} found")
        for name, item in entry["files"].items():
            what = f"embedded file {key}/{name}"
            if not entry["directory"] and "/" in name:
                raise ManifestError(f"{what}: a single file's name has a '/'")
            dest = confined(base, name, what)
            files[dest] = _content(item, what)
            paths[key] = str(base if entry["directory"] else dest)
    _no_file_under_another(files, target)
    return Restored(files, paths)


def _content(item: Mapping[str, Any], what: str) -> bytes:
    try:
        content = base64.b64decode(item["content_b64"], validate=True)
    except binascii.Error as exc:
        raise ManifestError(f"{what}: content is not base64 ({exc})") from None
    if hashlib.sha256(content).hexdigest() != item["sha256"]:
        raise ManifestError(f"{what}: sha256 does not match")
    return content


def _no_file_under_another(files: Mapping[Path, bytes], target: Path) -> None:
    """Refuse names that would make one restored file the directory of another."""
    dests = set(files)
    for dest in dests:
        for parent in dest.parents:
            if parent in dests:
                raise ManifestError(f"embedded file {dest.relative_to(target)}: below the "
                                    f"embedded file {parent.relative_to(target)}")


def schema_problems(config: Mapping[str, Any]) -> list[str]:
    """One line per way the config breaks the workflow's schema, unknown keys named."""
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    problems = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(config):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            problems += [f"unknown key {f'{where}.{k}' if where else k!r}"
                         for k in sorted(set(error.instance) - allowed)]
        else:
            problems.append(f"key {where or '(top level)'!r}: {error.message}")
    return sorted(problems)


def check_config(config: Mapping[str, Any]) -> None:
    """The manifest's config as the workflow would accept it."""
    problems = schema_problems(config)
    if problems:
        raise ManifestError("config: " + "; ".join(problems))


def check_path_keys(config: Mapping[str, Any], restored: Mapping[str, str]) -> None:
    """Each config key naming a file names one restored from the manifest or a strategy
    shipped with the workflow."""
    for key in PATH_KEYS:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not node or key in restored:
            continue
        if key == "flagging.strategy" and "/" not in node and (STRATEGIES / node).is_file():
            continue
        raise ManifestError(f"config {key}: {node!r} is not embedded in the manifest")

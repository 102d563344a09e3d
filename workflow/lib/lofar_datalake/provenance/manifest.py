"""The provenance manifest of a pipeline run (JSON, stored with the products).

It says what went in (input DIDs with checksums and the replica each was read from, taken from
the storage provider's journal), with which software (container references, tool versions) and
configuration (the config, and the small files it names, embedded so that another site can run
the same thing from the manifest alone), and what came out (products with checksums and their
DataLake DIDs). It never holds credentials: storage settings are copied by an allow-list.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from datalake_core.checksums import adler32_of_file, sha256_of_file
from datalake_core.journal import InputEvent, read_journal

from .tools import image_records

SCHEMA = "lofar-datalake/provenance/1"
# Files named by these config keys travel inside the manifest (each file at most EMBED_LIMIT).
EMBEDDED_KEYS = ("observations", "calibration.skymodel", "flagging.strategy", "truth")
EMBED_LIMIT = 2 * 2**20
# Storage settings worth recording; anything else (passwords, tokens) is never copied.
STORAGE_SETTINGS = ("site_rse", "stage_policy", "output_rse", "output_rules", "link_mode",
                    "max_concurrent_transfers", "rule_lifetime", "local_copy")


def describe_file(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_of_file(path),
            "adler32": adler32_of_file(path)}


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def embed_files(config: Mapping[str, Any], base: Path) -> dict[str, dict[str, Any]]:
    """The small files (or directories of them) the config names, with their content."""
    embedded: dict[str, dict[str, Any]] = {}
    for key in EMBEDDED_KEYS:
        value = _lookup(config, key)
        if not value:
            continue
        root = Path(value) if Path(value).is_absolute() else base / value
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else (
            [root] if root.is_file() else [])
        entries = {}
        for path in files:
            if path.stat().st_size > EMBED_LIMIT:
                continue
            name = str(path.relative_to(root)) if root.is_dir() else path.name
            entries[name] = {**describe_file(path),
                             "content_b64": base64.b64encode(path.read_bytes()).decode()}
        if entries:
            embedded[key] = {"path": str(value), "directory": root.is_dir(), "files": entries}
    return embedded


def input_records(dids: Iterable[str], workdir: Path) -> list[dict[str, Any]]:
    """Each input DID with its catalogue checksums and the replica last used for it here."""
    latest: dict[str, InputEvent] = {}
    for event in read_journal(workdir):
        if isinstance(event, InputEvent):
            # A rerun finds its inputs "already present": keep the replica they came from.
            if event.rse or event.did not in latest:
                latest[event.did] = event
    return [_input_record(did, latest.get(did)) for did in dids]


def _input_record(did: str, event: InputEvent | None) -> dict[str, Any]:
    if event is None:
        return {"did": did, "bytes": None, "adler32": None, "md5": None, "replica": None}
    return {"did": did, "bytes": event.bytes, "adler32": event.adler32, "md5": event.md5,
            "replica": {"rse": event.rse, "pfn": event.pfn, "how": str(event.how),
                        "at": event.time}}


def storage_settings(settings: Any) -> dict[str, Any]:
    """The non-secret settings of the datalake storage provider, from Snakemake's object."""
    if settings is None:
        return {}
    out = {}
    for name in STORAGE_SETTINGS:
        value = getattr(settings, name, None)
        if value not in (None, ""):
            out[name] = str(value) if isinstance(value, os.PathLike) else value
    return out


SECRET_WORDS = ("password", "passwd", "token", "secret", "credential", "proxy")


def scrub(value: Any) -> Any:
    """The config with any value under a secret-looking key replaced (a config should hold
    none; this keeps one that does from spreading it)."""
    if isinstance(value, Mapping):
        return {k: "<removed>" if any(w in str(k).lower() for w in SECRET_WORDS) else scrub(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def build(*, config: Mapping[str, Any], workdir: Path, input_dids: list[str],
          local_inputs: list[Path], products: list[Path], product_did: Mapping[str, str],
          containers: Mapping[str, str], container_deployment: bool,
          storage: Mapping[str, Any], executor: str | None, started: float | None,
          tools: Mapping[str, str | None]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "schema": SCHEMA,
        "created": now.isoformat(timespec="seconds"),
        "run": {
            "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds")
            if started else None,
            "ended": now.isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "workdir": str(workdir),
            "executor": executor,
            "profile": os.environ.get("SNAKEMAKE_PROFILE"),
            "storage": dict(storage),
            "input_mode": config.get("input_mode"),
        },
        "inputs": input_records(input_dids, workdir),
        "local_inputs": [{"path": str(p), **describe_file(p)} for p in local_inputs],
        "software": {
            "containers": dict(containers),
            "containers_used": container_deployment,
            "images": image_records(containers),
            "versions": dict(tools),
        },
        "config": scrub(json.loads(json.dumps(config, default=str))),
        "embedded": embed_files(config, workdir),
        "outputs": [{"path": str(p), "did": product_did.get(str(p)), **describe_file(workdir / p)}
                    for p in products],
    }


def write(manifest: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(manifest, indent=1) + "\n")
    part.replace(path)

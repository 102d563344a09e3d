"""Turn a `POST /jobs` body into job and file records, following FTS's JobBuilder rules.

The rules matter because clients depend on them: Rucio reads `job_metadata` back, the easy API
sends `verify_checksum=False` with a checksum (which FTS reads as "target"), the CLI sends
single-letter checksum modes, and several sources for one file become alternative file rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

TIME_FMT = "%Y-%m-%dT%H:%M:%S"
# FTS's fixed base id: Rucio derives deterministic job ids from it (uuid5(uuid5(base, vo), sid)).
BASE_ID = uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9")
DEFAULT_PRIORITY = 3
SERVER_DEFAULT_RETRY = 0

CHECKSUM_MODES = {"b": "both", "s": "source", "t": "target", "n": "none"}


class SubmitError(Exception):
    """A submission FTS would refuse; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Submission:
    """Records as stored; keys starting with "_" are private and never shown to clients."""

    job: dict[str, Any]
    files: list[dict[str, Any]]


def utcnow() -> dt.datetime:
    """Naive UTC, the way FTS stores and prints its times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def timestamp(when: dt.datetime) -> str:
    return when.strftime(TIME_FMT)


def storage_element(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname or ''}"


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y")
    return bool(value)


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SubmitError(400, f"Invalid value for {name}: {value!r}") from None


def _urls(entry: dict[str, Any], key: str, index: int) -> list[str]:
    urls = entry.get(key)
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls:
        raise SubmitError(400, f"File #{index} has no {key}")
    for url in urls:
        if not isinstance(url, str) or not url.strip():
            raise SubmitError(400, f"File #{index}: {key} must be non-empty strings")
        parsed = urlparse(url.strip())
        if not parsed.scheme or not parsed.path:
            raise SubmitError(400, f"Invalid URL in file #{index}: {url!r}")
    return [url.strip() for url in urls]


def checksum_mode(verify: Any, has_checksum: bool) -> str:
    """FTS's _check_checksum: booleans depend on whether a checksum was given; strings by letter."""
    if verify is None:
        verify = False
    if isinstance(verify, bool):
        if verify:
            return "both"
        return "target" if has_checksum else "none"
    letter = str(verify).strip().lower()[:1]
    if letter not in CHECKSUM_MODES:
        raise SubmitError(400, f"Invalid verify_checksum value: {verify!r}")
    return CHECKSUM_MODES[letter]


def overwrite_flag(params: dict[str, Any]) -> str | None:
    """Y overwrite, R only on retries, M intermediate hops, D/Q tape variants (FTS letters)."""
    flags = {k: _flag(params.get(k)) for k in ("overwrite", "overwrite_on_retry", "overwrite_hop")}
    on_disk = _flag(params.get("overwrite_when_only_on_disk"))
    count = sum(flags.values()) + on_disk
    if count > 1 and not (count == 2 and flags["overwrite_hop"] and on_disk):
        raise SubmitError(400, "Incompatible overwrite flags used at the same time")
    if flags["overwrite"]:
        return "Y"
    if flags["overwrite_on_retry"]:
        return "R"
    if flags["overwrite_hop"]:
        return "Q" if on_disk else "M"
    return "D" if on_disk else None


def job_id_for(params: dict[str, Any], vo: str) -> str:
    if params.get("id_generator") == "deterministic":
        sid = params.get("sid")
        if sid is None:
            raise SubmitError(400, "Need sid for deterministic job id generation")
        return str(uuid.uuid5(uuid.uuid5(BASE_ID, vo), str(sid)))
    return str(uuid.uuid1())


def _internal_params(params: dict[str, Any]) -> str | None:
    parts = []
    for key, label in (("nostreams", "nostreams"), ("timeout", "timeout")):
        if params.get(key):
            parts.append(f"{label}:{_int(params[key], key, 0)}")
    if params.get("buffer_size"):
        parts.append(f"buffersize:{_int(params['buffer_size'], 'buffer_size', 0)}")
    for key, label in (("strict_copy", "strict"), ("disable_cleanup", "disable-cleanup")):
        if _flag(params.get(key)):
            parts.append(label)
    if _flag(params.get("ipv4")):
        parts.append("ipv4")
    elif _flag(params.get("ipv6")):
        parts.append("ipv6")
    if _flag(params.get("s3alternate")):
        parts.append("s3alternate")
    return ",".join(parts) or None


def build(
    body: Any, *, user_dn: str, cred_id: str, vo: str, now: dt.datetime, host: str
) -> Submission:
    if not isinstance(body, dict):
        raise SubmitError(400, "The submission must be a JSON object")
    entries = body.get("files") or body.get("Files")
    if not entries:
        if body.get("delete") or body.get("staging"):
            raise SubmitError(400, "Only transfer jobs are supported by this FTS stand-in")
        raise SubmitError(400, "No transfers or namespace operations specified")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SubmitError(400, "'files' must be a list of objects")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise SubmitError(400, "'params' must be an object")

    multihop = _flag(params.get("multihop"))
    bring_online = _int(params.get("bring_online"), "bring_online", -1)
    pin_lifetime = _int(params.get("copy_pin_lifetime"), "copy_pin_lifetime", -1)
    # FTS stages whenever either is positive (Rucio always sends copy_pin_lifetime); files
    # on the testbed's tape endpoints are recalled then, any other is online at once
    # (staging.py).
    staging = bring_online > 0 or pin_lifetime > 0
    pending = "STAGING" if staging else "SUBMITTED"
    priority = max(1, min(5, _int(params.get("priority"), "priority", DEFAULT_PRIORITY)))
    job_id = job_id_for(params, vo)

    files: list[dict[str, Any]] = []
    replicas = False
    for index, entry in enumerate(entries):
        sources = _urls(entry, "sources", index)
        destinations = _urls(entry, "destinations", index)
        pairs = [(s, d) for s in sources for d in destinations]
        replicas = replicas or len(pairs) > 1
        if multihop and len(pairs) > 1:
            raise SubmitError(400, "Can not request multiple replica job together with multihop")
        for source, dest in pairs:
            files.append(_file_record(entry, job_id, index, source, dest, priority, vo))
    # Alternatives (several rows per file_index) and later hops wait as NOT_USED; the first
    # row of each group, or the first hop, is the one scheduled.
    seen_index: set[int] = set()
    for i, record in enumerate(files):
        waits = (multihop and i > 0) or record["file_index"] in seen_index
        seen_index.add(record["file_index"])
        record["file_state"] = "NOT_USED" if waits else pending

    has_checksum = any(f["checksum"] for f in entries if isinstance(f.get("checksum"), str))
    for record in files:
        record["checksum"] = record["checksum"] or "ADLER32"
    if multihop:
        job_type = "H"
    elif replicas:
        job_type = "R"
    else:
        job_type = "Y" if _flag(params.get("reuse")) else "N"
    source_se = files[0]["source_se"] if multihop else _common(files, "source_se")
    dest_se = files[-1]["dest_se"] if multihop else _common(files, "dest_se")

    retry = _int(params.get("retry"), "retry", SERVER_DEFAULT_RETRY)
    job = {
        "job_id": job_id,
        "job_state": pending,
        "job_type": job_type,
        "source_se": source_se,
        "dest_se": dest_se,
        "user_dn": user_dn,
        "cred_id": cred_id,
        "vo_name": vo,
        "reason": None,
        "submit_time": timestamp(now),
        "submit_host": host,
        "priority": priority,
        "max_time_in_queue": params.get("max_time_in_queue"),
        "space_token": params.get("destination_spacetoken") or params.get("spacetoken"),
        "source_space_token": params.get("source_spacetoken"),
        "internal_job_params": _internal_params(params),
        "dst_file_report": _flag(params.get("dst_file_report")),
        "overwrite_flag": overwrite_flag(params),
        "job_finished": None,
        "copy_pin_lifetime": pin_lifetime,
        "verify_checksum": checksum_mode(params.get("verify_checksum"), has_checksum)[0],
        "bring_online": bring_online,
        "archive_timeout": _int(params.get("archive_timeout"), "archive_timeout", -1),
        "target_qos": params.get("target_qos"),
        # Echoed exactly: Rucio's poller reads job_metadata.get("multi_sources") back.
        "job_metadata": params.get("job_metadata"),
        "retry": retry,
        "retry_delay": _int(params.get("retry_delay"), "retry_delay", 0),
        "cancel_job": None,
        "_timeout": _int(params.get("timeout"), "timeout", 0) or None,
    }
    return Submission(job=job, files=files)


def _common(files: list[dict[str, Any]], key: str) -> str | None:
    values = {f[key] for f in files}
    return values.pop() if len(values) == 1 else None


def _file_record(
    entry: dict[str, Any], job_id: str, index: int, source: str, dest: str, priority: int, vo: str
) -> dict[str, Any]:
    checksum = entry.get("checksum")
    size = _int(entry.get("filesize"), "filesize", 0)
    return {
        "job_id": job_id,
        "file_index": index,
        "file_state": None,
        "source_surl": source,
        "dest_surl": dest,
        "source_se": storage_element(source),
        "dest_se": storage_element(dest),
        "vo_name": vo,
        "priority": priority,
        "checksum": checksum if isinstance(checksum, str) and checksum else None,
        "user_filesize": size,
        "filesize": size,
        "file_metadata": entry.get("metadata"),
        "staging_metadata": entry.get("staging_metadata"),
        "archive_metadata": entry.get("archive_metadata"),
        "activity": entry.get("activity") or "default",
        "selection_strategy": entry.get("selection_strategy") or "auto",
        "scitag": entry.get("scitag"),
        "reason": None,
        "recoverable": None,
        "transfer_host": None,
        "staging_host": None,
        "start_time": None,
        "finish_time": None,
        "staging_start": None,
        "staging_finished": None,
        "archive_start_time": None,
        "archive_finish_time": None,
        "tx_duration": None,
        "throughput": None,
        "retry": 0,
        "retry_timestamp": None,
        "internal_file_params": None,
        "pid": None,
        "bringonline_token": None,
        "log_file": None,
        "log_debug": None,
        "dest_surl_uuid": None,
        "hashed_id": zlib.crc32(f"{job_id}/{index}".encode()) & 0xFFFF,
        "file_state_initial": None,
    }


def decode_body(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmitError(400, f"Badly formatted JSON request ({exc})") from None

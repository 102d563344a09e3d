"""FTS's "transfer complete" messages: one per file that reached a final state, to a STOMP broker.

Production FTS publishes these to its monitoring broker, and Rucio's conveyor-receiver marks a
transfer DONE or FAILED from them (rucio 41.5.1: `daemons/conveyor/receiver.py` reads `vo`,
`job_metadata.issuer`, `job_state`, `endpnt` and `file_metadata.request_id`;
`transfertool/fts3.py`, `FTS3CompletionMessageTransferStatusReport`, reads `tr_id` (the job id
after its last `__`), `t_final_transfer_state` (`Ok`, `Error`, FTS's `Abort`),
`t__error_message`, `tr_timestamp_start`/`tr_timestamp_complete` (ms), `src_url`, `dst_url`,
`is_archiving`). The field names are FTS's own.

A message carries no secret: no token, password, credential id or credential path, and not the
submitter's DN, only what Rucio or a monitoring consumer needs about the file.

Publishing never holds up or fails a transfer: messages go through a bounded in-memory queue
to one sending thread, which connects when it needs to and logs (without the login) and drops
what it cannot send; Rucio's conveyor-poller is the safety net for a lost message.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .jobspec import TIME_FMT

log = logging.getLogger("lofar_datalake.fts.messages")

# FTS's t_final_transfer_state per final file state.
FINAL_STATES = {"FINISHED": "Ok", "FAILED": "Error", "CANCELED": "Abort"}
QUEUE_LIMIT = 10_000  # messages waiting for the broker; more are dropped (and logged)
CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    vhost: str
    destination: str
    username: str
    password: str = field(repr=False)

    @classmethod
    def from_file(cls, path: Path) -> Broker:
        """The `[broker]` section of the publisher's file (broker.py writes it, 0600)."""
        parser = configparser.ConfigParser(interpolation=None)
        if not parser.read(path) or not parser.has_section("broker"):
            raise ValueError(f"{path}: no [broker] section")
        section = parser["broker"]
        return cls(section["host"], int(section["port"]), section["vhost"],
                   section["destination"], section["username"], section["password"])


def completion(job: dict[str, Any], record: dict[str, Any], endpoint: str
               ) -> dict[str, Any] | None:
    """FTS's completion message for a file in a final state, else None."""
    final = FINAL_STATES.get(str(record.get("file_state")))
    if final is None:
        return None
    source, dest = str(record["source_surl"]), str(record["dest_surl"])
    started = _millis(record.get("start_time"))
    finished = _millis(record.get("finish_time"))
    return {
        "endpnt": endpoint,
        "tr_id": f"{_tr_prefix(record)}__{_host(source)}__{_host(dest)}__"
                 f"{record['file_id']}__{job['job_id']}",
        "job_id": job["job_id"],
        "file_id": record["file_id"],
        "vo": job.get("vo_name"),
        "src_url": source,
        "dst_url": dest,
        "src_hostname": _host(source),
        "dst_hostname": _host(dest),
        "t_final_transfer_state": final,
        "t__error_message": record.get("reason") or "",
        "tr_timestamp_start": started,
        "tr_timestamp_complete": finished,
        "timestamp_tr_st": started,
        "timestamp_tr_comp": finished,
        "f_size": record.get("filesize") or 0,
        "file_size": record.get("filesize") or 0,
        "retry": record.get("retry") or 0,
        "retry_max": job.get("retry") or 0,
        "is_recoverable": bool(record.get("recoverable")),
        "is_archiving": False,
        "job_state": job.get("job_state"),
        "job_multihop": job.get("job_type") == "H",
        "job_m_replica": job.get("job_type") == "R",
        "job_metadata": job.get("job_metadata") or {},
        "file_metadata": record.get("file_metadata") or {},
        "activity": record.get("activity"),
    }


def _millis(stamp: Any) -> int:
    if not stamp:
        return 0
    when = dt.datetime.strptime(str(stamp), TIME_FMT).replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _tr_prefix(record: dict[str, Any]) -> str:
    """FTS names a transfer by the time it started: `YYYY-MM-DD-HHMM`."""
    stamp = record.get("start_time") or record.get("finish_time")
    if not stamp:
        return "1970-01-01-0000"
    return dt.datetime.strptime(str(stamp), TIME_FMT).strftime("%Y-%m-%d-%H%M")


def _host(url: str) -> str:
    return urlparse(url).hostname or "localhost"


class Publisher:
    """Sends completion messages from one thread; a send that fails drops the connection (the
    next message connects again) and the message (the poller picks the transfer up)."""

    def __init__(self, broker: Broker, endpoint: str) -> None:
        self._broker = broker
        self._endpoint = endpoint
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._connection: Any = None
        self._thread = threading.Thread(target=self._loop, name="fts-messages", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=CONNECT_TIMEOUT_S * 2)

    def file_ended(self, store: Any, job_id: str, file_id: int) -> None:
        """Queue the message of a file if it is in a final state; never raises."""
        try:
            job = store.job(job_id)
            record = next((f for f in store.files(job_id) if f["file_id"] == file_id), None)
            message = None if job is None or record is None else completion(
                job, record, self._endpoint)
            if message is not None:
                self._queue.put_nowait(message)
        except queue.Full:
            log.warning("completion message of file %d of job %s dropped: %d waiting",
                        file_id, job_id, QUEUE_LIMIT)
        except Exception:
            log.exception("completion message of file %d of job %s not made", file_id, job_id)

    def _loop(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self._send(message)
            except Exception as exc:  # the broker is down or refused us: the poller remains
                log.warning("completion message of file %s of job %s not published to "
                            "%s:%d: %s", message["file_id"], message["job_id"],
                            self._broker.host, self._broker.port, type(exc).__name__)
                self._disconnect()
        self._disconnect()

    def _send(self, message: dict[str, Any]) -> None:
        if self._connection is None or not self._connection.is_connected():
            self._connect()
        self._connection.send(destination=self._broker.destination, body=json.dumps(message),
                              headers={"persistent": "true", "vo": str(message["vo"])},
                              content_type="application/json")

    def _connect(self) -> None:
        import stomp

        broker = self._broker
        connection = stomp.Connection12(host_and_ports=[(broker.host, broker.port)],
                                        vhost=broker.vhost, reconnect_attempts_max=1,
                                        timeout=CONNECT_TIMEOUT_S)
        connection.connect(username=broker.username, passcode=broker.password, wait=True)
        self._connection = connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # gone already
                connection.disconnect()


_publisher: Publisher | None = None


def start(broker_file: Path, endpoint: str) -> Publisher:
    """Publish from now on (the service's main calls it once)."""
    global _publisher
    _publisher = Publisher(Broker.from_file(broker_file), endpoint)
    _publisher.start()
    return _publisher


def file_ended(store: Any, job_id: str, file_id: int) -> None:
    """The worker's hook: publish the file's outcome if it is final and publishing is on."""
    if _publisher is not None:
        _publisher.file_ended(store, job_id, file_id)

"""HTTP plumbing shared by the handlers: errors, FTS-style per-job statuses, request bodies."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

MAX_BODY = 16 * 2**20
OK, NOT_MODIFIED = "200 Ok", "304 Not Modified"  # FTS's spelling, which clients compare
PHRASES = {419: "Authentication Timeout"}  # FTS's "delegate first"; not in HTTPStatus

Record = dict[str, Any]
Answer = tuple[int, Any]  # status, JSON-able body or Text


class Text(str):
    """A body sent as text/plain rather than JSON (the delegation request PEM)."""


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return PHRASES.get(status, "Error")


def public(record: Record) -> Record:
    """Keys starting with "_" are the service's own bookkeeping."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def missing(job_id: str) -> Record:
    return {
        "job_id": job_id,
        "http_status": "404 Not Found",
        "http_message": f'No job with the id "{job_id}" has been found',
    }


def multistatus(ids: list[str], answers: list[Record]) -> Answer:
    """One id: the record itself (404 if missing); several: a list, 207 if any is missing."""
    if not answers:
        raise HttpError(404, "No job id given")
    gone = any(a["http_status"].startswith("404") for a in answers)
    if len(ids) == 1:
        return (404 if gone else 200), answers[0]
    return (207 if gone else 200), answers


def read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise HttpError(413, "Request body too large")
    stream = environ["wsgi.input"]
    if length:
        return bytes(stream.read(length))
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return bytes(stream.read(MAX_BODY))
    return b""

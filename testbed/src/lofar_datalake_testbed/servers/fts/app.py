"""The FTS3 REST API as a plain WSGI application: routing, service info, whoami, delegation.

Errors are `{"status", "message"}` bodies like fts-rest-flask's; the `fts3` client shows the
message. The job endpoints live in jobs_api.py. Every endpoint, `GET /` included, answers 401 to a
caller without a verified client certificate or a valid bearer token (the `fts3` client and Rucio
send theirs on every request).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .. import bearer
from . import auth
from .answers import Answer, HttpError, Text, phrase, read_body
from .jobs_api import JobsApi
from .store import Store
from .worker import Engine

log = logging.getLogger("lofar_datalake.fts.requests")

API_VERSION = {"major": 3, "minor": 12, "patch": 0}


class App:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        vo: str,
        storage_roots: Sequence[Path] = (),
        verifier: bearer.Verifier | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._vo = vo
        self._verifier = verifier
        jobs = JobsApi(store, engine, self._identity, storage_roots)
        get, post, put, delete = "GET", "POST", "PUT", "DELETE"
        dlg, job, ids = r"(?P<dlg>[^/]+)", r"(?P<job>[^/]+)", r"(?P<ids>[^/]+)"
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            (get, re.compile(r"/"), self.info),
            (get, re.compile(r"/whoami"), self.whoami),
            (get, re.compile(rf"/delegation/{dlg}"), self.delegation),
            (delete, re.compile(rf"/delegation/{dlg}"), self.undelegate),
            (get, re.compile(rf"/delegation/{dlg}/request"), self.delegation_request),
            (put, re.compile(rf"/delegation/{dlg}/credential"), self.delegate),
            (post, re.compile(rf"/delegation/{dlg}/credential"), self.delegate),
            (get, re.compile(r"/jobs"), jobs.list_jobs),
            (post, re.compile(r"/jobs"), jobs.submit),
            (delete, re.compile(r"/jobs/(all|vo/[^/]+)"), jobs.cancel_all),
            (get, re.compile(rf"/jobs/{ids}"), jobs.get_jobs),
            (delete, re.compile(rf"/jobs/{ids}"), jobs.cancel),
            (post, re.compile(rf"/jobs/{ids}"), jobs.modify),
            (get, re.compile(rf"/jobs/{job}/files"), jobs.get_files),
            (get, re.compile(rf"/jobs/{job}/files/(?P<file>\d+)"), jobs.get_file),
            (get, re.compile(rf"/jobs/{job}/files/(?P<file>\d+)/retries"), jobs.get_retries),
            (delete, re.compile(rf"/jobs/{job}/files/(?P<files>[\d,]+)"), jobs.cancel_files),
            (get, re.compile(rf"/jobs/{job}/dm"), jobs.get_dm),
            (get, re.compile(rf"/jobs/{job}/(?P<field>\w+)"), jobs.get_field),
        ]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET")
        # Clients build URLs as endpoint + "/jobs"; an endpoint ending in "/" gives "//jobs".
        path = re.sub("/+", "/", environ.get("PATH_INFO") or "/")
        path = path.rstrip("/") or "/"
        try:
            status, body = self._dispatch(method, path, environ)
        except HttpError as exc:
            status, body = exc.status, {"status": f"{exc.status} {phrase(exc.status)}"}
            body["message"] = exc.message
        except Exception:
            log.exception("%s %s failed", method, path)
            status, body = 500, {"status": "500 Internal Server Error", "message": "server error"}
        if isinstance(body, Text):
            payload, kind = body.encode(), "text/plain; charset=utf-8"
        else:
            payload, kind = json.dumps(body).encode(), "application/json"
        if status in (204, 304):
            payload = b""
        start_response(
            f"{status} {phrase(status)}",
            [("Content-Type", kind), ("Content-Length", str(len(payload)))],
        )
        query = environ.get("QUERY_STRING")
        log.info(  # one line per request; never headers (tokens) nor bodies (proxies)
            '%s "%s %s%s" %d %d %.0fms',
            environ.get("REMOTE_ADDR", "-"),
            method,
            path,
            f"?{query}" if query else "",
            status,
            len(payload),
            (time.monotonic() - started) * 1000,
        )
        return [payload]

    def _dispatch(self, method: str, path: str, environ: dict[str, Any]) -> Answer:
        self._identity(environ)  # before routing: nothing is answered to anonymous callers
        allowed = False
        for verb, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed = True
            if verb == method:
                query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                return handler(environ, query, **match.groupdict())
        if allowed:
            raise HttpError(405, f"{method} is not allowed on {path}")
        raise HttpError(404, f"Not found: {path}")

    def _identity(self, environ: dict[str, Any]) -> auth.Identity:
        try:
            return auth.identify(environ, self._vo, self._verifier)
        except auth.Unauthenticated as exc:
            raise HttpError(401, str(exc)) from None
        except auth.IssuerUnavailable as exc:
            raise HttpError(503, str(exc)) from None

    # --- service ---------------------------------------------------------------------------

    def info(self, environ: dict[str, Any], query: dict[str, str]) -> Answer:
        links = {"jobs": {"href": "/jobs{?user_dn,vo_name,state_in}", "templated": True}}
        return 200, {
            "api": API_VERSION,
            "core": API_VERSION,
            "schema": API_VERSION,
            "delegation": {"major": 1, "minor": 0, "patch": 0},
            "_links": {"curies": [], **links},
        }

    def whoami(self, environ: dict[str, Any], query: dict[str, str]) -> Answer:
        return 200, auth.whoami(self._identity(environ))

    # --- delegation ------------------------------------------------------------------------

    def _own(self, environ: dict[str, Any], dlg: str) -> auth.Identity:
        identity = self._identity(environ)
        if dlg != identity.delegation_id:
            raise HttpError(403, "The requested ID and the credentials ID do not match")
        return identity

    def delegation(self, environ: dict[str, Any], query: dict[str, str], dlg: str) -> Answer:
        self._own(environ, dlg)
        stored = self._store.delegation(dlg)
        if stored is None:
            return 200, None
        return 200, {**stored, "voms_attrs": []}

    def delegation_request(
        self, environ: dict[str, Any], query: dict[str, str], dlg: str
    ) -> Answer:
        self._own(environ, dlg)
        return 200, Text(auth.delegation_request())

    def delegate(self, environ: dict[str, Any], query: dict[str, str], dlg: str) -> Answer:
        identity = self._own(environ, dlg)
        try:
            expiry = auth.proxy_expiry(read_body(environ))
        except ValueError:
            raise HttpError(
                400, "Could not process the proxy: not a PEM certificate chain"
            ) from None
        self._store.put_delegation(dlg, identity.user_dn, expiry)
        return 201, Text("")

    def undelegate(self, environ: dict[str, Any], query: dict[str, str], dlg: str) -> Answer:
        self._own(environ, dlg)
        if not self._store.delete_delegation(dlg):
            raise HttpError(404, "Delegated credentials not found")
        return 204, Text("")

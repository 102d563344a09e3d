"""The WebDAV side of a copy: GET to read, PUT to write, DELETE to clean up, TLS verified.

The testbed's storages (like dCache or EOS) create parent collections on PUT, so no MKCOL.
A remote destination that may hold partial bytes is deleted again on any failure.
Storage that lets only certificate holders write gets the client PEM named by X509_USER_PROXY
(certificate and key in one file), the credential gfal2 presents for a real FTS. A job submitted
with a bearer token presents that token instead (`Authorization: Bearer`, https only), so the
storage applies the submitter's own scopes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import requests
import requests.auth

from .streams import CHUNK, Aborted, Stream, TransferError, check_complete, exists_error

CONNECT_TIMEOUT = 10.0
HTTP_SCHEMES = {"https": "https", "davs": "https", "http": "http", "dav": "http"}
HTTP_ERRNO = {401: errno.EACCES, 403: errno.EACCES, 404: errno.ENOENT, 409: errno.ENOENT}


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer` on https requests only: a token never crosses the wire in clear.

    requests drops it when a redirect leads to another host, and does not put it back."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if urlparse(request.url or "").scheme == "https":
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"


def client_session(bearer: str | None = None) -> requests.Session:
    """An HTTP session presenting `bearer`, or else the service's client certificate if any."""
    session = requests.Session()
    proxy = os.environ.get("X509_USER_PROXY")
    if bearer is not None:
        session.auth = BearerAuth(bearer)
    elif proxy:
        session.cert = (proxy, proxy)
    return session


def http_url(url: str) -> str:
    """FTS names WebDAV "davs://"; on the wire it is https."""
    parsed = urlparse(url)
    return parsed._replace(scheme=HTTP_SCHEMES[parsed.scheme.lower()]).geturl()


def http_error(side: str, status: int, url: str, action: str) -> TransferError:
    code = HTTP_ERRNO.get(status, errno.ENOSPC if status == 507 else errno.EIO)
    text = f"Result HTTP {status} while {action} {url}"
    if code == errno.ENOENT:
        text += ": No such file or directory"
    return TransferError(side, code, text, recoverable=status >= 500 or status == 429)


def network_error(side: str, exc: requests.RequestException, url: str) -> TransferError:
    if isinstance(exc, requests.Timeout):
        code = errno.ETIMEDOUT
    elif isinstance(exc, requests.exceptions.SSLError):
        code = errno.EPROTO
    else:
        code = errno.ECONNREFUSED
    return TransferError(side, code, f"{url}: {type(exc).__name__}: {exc}")


def open_source(
    url: str, session: requests.Session, ca: str | bool, timeout: float
) -> tuple[Iterator[bytes], int | None]:
    try:
        response = session.get(
            http_url(url), stream=True, verify=ca, timeout=(CONNECT_TIMEOUT, timeout)
        )
    except requests.RequestException as exc:
        raise network_error("SOURCE", exc, url) from None
    if response.status_code != 200:
        response.close()
        raise http_error("SOURCE", response.status_code, url, "reading")
    length = response.headers.get("Content-Length")
    size = int(length) if length and "Content-Encoding" not in response.headers else None

    def chunks() -> Iterator[bytes]:
        with response:
            try:
                yield from response.iter_content(CHUNK)
            except requests.RequestException as exc:
                raise network_error("SOURCE", exc, url) from None

    return chunks(), size


def delete(url: str, session: requests.Session, ca: str | bool) -> None:
    try:
        session.delete(http_url(url), verify=ca, timeout=(CONNECT_TIMEOUT, 60))
    except requests.RequestException:
        pass  # best effort: the copy has already failed for a reason worth reporting


def write(
    url: str,
    stream: Stream,
    *,
    source: str,
    checksum: str | None,
    verify: str,
    overwrite: bool,
    session: requests.Session,
    ca: str | bool,
    timeout: float,
    on_write: Callable[[], None],
) -> None:
    target = http_url(url)
    timeouts = (CONNECT_TIMEOUT, timeout)
    if not overwrite:
        try:
            head = session.head(target, verify=ca, timeout=timeouts)
        except requests.RequestException as exc:
            raise network_error("DESTINATION", exc, url) from None
        if head.status_code == 200:
            raise exists_error()
    # From here on the destination may hold our partial bytes: any failure deletes it.
    on_write()
    try:
        body: Any = stream if stream.size is not None else iter(stream)
        response = session.put(target, data=body, verify=ca, timeout=timeouts)
    except requests.RequestException as exc:
        delete(url, session, ca)
        if stream.error is not None:  # the source failed or the copy was aborted mid-PUT
            raise stream.error from None
        raise network_error("DESTINATION", exc, url) from None
    except BaseException:
        delete(url, session, ca)
        raise
    if response.status_code not in (200, 201, 204):
        if response.status_code >= 500:  # the server may have kept part of the body
            delete(url, session, ca)
        raise http_error("DESTINATION", response.status_code, url, "writing")
    try:
        check_complete(stream, source, checksum, verify)
        head = session.head(target, verify=ca, timeout=timeouts)
        stored = head.headers.get("Content-Length")
        if head.status_code != 200 or (stored is not None and int(stored) != stream.count):
            raise TransferError("TRANSFER", errno.EIO, f"size mismatch after writing {url}")
        if stream.aborted():
            raise Aborted
    except requests.RequestException as exc:
        delete(url, session, ca)
        raise network_error("DESTINATION", exc, url) from None
    except BaseException:
        delete(url, session, ca)
        raise

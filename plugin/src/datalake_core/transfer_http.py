"""HTTPS (WebDAV) reads of replicas: TLS verified against a CA bundle, checksummed while
streaming, written under a temporary name and renamed only once size and adler32 match.

Rucio's own WebDAV protocol disables certificate checks, so replicas are fetched here instead.
Each request presents this process's storage credential (`storage_credentials.for_storage`: the
X.509 proxy, or in token mode the current bearer token).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .checksums import Adler32
from .errors import TransferFailed, TransientFailure
from .materialise import commit, local_error, open_part, part_name
from .storage_credentials import for_storage
from .transfer_retry import retrying

CHUNK = 1 << 20
CONNECT_TIMEOUT = 15.0
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")


def fetch(url: str, dest: Path, *, size: int, adler32: str | None, verify: str | bool,
          timeout: float, session: requests.Session | None = None) -> None:
    """`fetch_once`, again after a short pause when the connection was reset or timed out
    (a busy server); refused connections, TLS and checksum failures are not retried."""
    retrying(lambda: fetch_once(url, dest, size=size, adler32=adler32, verify=verify,
                                timeout=timeout, session=session))


def fetch_once(url: str, dest: Path, *, size: int, adler32: str | None, verify: str | bool,
               timeout: float, session: requests.Session | None = None) -> None:
    """Download `url` to `dest`; on any failure nothing is left under `dest` or its .part.
    A body shorter than the server announced is a broken transfer (TransferFailed); a complete
    body that differs from the catalogue is a corrupt replica (CorruptReplica). No usable
    credential (an expired token, say) is no replica's fault: RucioAuthError, not TransferFailed."""
    credential = for_storage()
    http = session or requests.Session()
    part = part_name(dest)
    digest = Adler32()
    written = 0
    announced: int | None = None
    try:
        with http.get(url, stream=True, verify=verify, timeout=(CONNECT_TIMEOUT, timeout),
                      cert=credential.cert, headers=credential.headers) as response:
            if response.status_code != 200:
                raise TransferFailed(f"HTTP {response.status_code} {response.reason} from "
                                     f"{_origin(url)}")
            length = response.headers.get("Content-Length")
            announced = int(length) if length and length.isdigit() else None
            with open_part(dest, size) as handle:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
    except requests.exceptions.SSLError as exc:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"TLS verification failed for {_origin(url)}: {_short(exc)}"
                             ) from None
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        reason = _network_reason(exc, url, timeout)
        errors = requests.exceptions
        transient = isinstance(exc, errors.ConnectTimeout | errors.ChunkedEncodingError
                               ) or "reset" in str(exc).lower()
        raise (TransientFailure if transient else TransferFailed)(reason) from None
    except OSError as exc:  # writing the .part (requests' own errors are caught above)
        part.unlink(missing_ok=True)
        raise local_error(exc, dest, size) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if announced is not None and written != announced:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"connection to {_origin(url)} closed after {written} of "
                             f"{announced} bytes")
    commit(part, dest, size=size, adler32=adler32, got_size=written,
           got_adler32=digest.hexdigest())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _network_reason(exc: requests.RequestException, url: str, timeout: float) -> str:
    """One line an operator can act on: which server, and what went wrong."""
    where = _origin(url)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"cannot reach {where}: no connection within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{where} sent nothing for {timeout:.0f} s"
    found = _ERRNO.search(str(exc))
    if isinstance(exc, requests.exceptions.ConnectionError) and found:
        return f"cannot reach {where}: {found.group(1).strip()}"
    return f"{type(exc).__name__} from {where}: {_short(exc)}"


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"

"""HTTPS (WebDAV) reads of replicas: TLS verified against a CA bundle, checksummed while
streaming, written under a temporary name and renamed only once size and adler32 match.

Rucio's own WebDAV protocol disables certificate checks, so replicas are fetched here instead.
"""

from __future__ import annotations

from pathlib import Path

import requests

from .checksums import Adler32
from .localcopy import TransferFailed, commit, part_name

CHUNK = 1 << 20
CONNECT_TIMEOUT = 15.0


def fetch(url: str, dest: Path, *, size: int, adler32: str | None, verify: str | bool,
          timeout: float, session: requests.Session | None = None) -> None:
    """Download `url` to `dest`; on any failure nothing is left under `dest` or its .part."""
    http = session or requests.Session()
    part = part_name(dest)
    digest = Adler32()
    written = 0
    try:
        with http.get(url, stream=True, verify=verify, timeout=(CONNECT_TIMEOUT, timeout)
                      ) as response:
            if response.status_code != 200:
                raise TransferFailed(f"HTTP {response.status_code} {response.reason}")
            with open(part, "wb") as handle:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
    except requests.exceptions.SSLError as exc:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"TLS verification failed: {_short(exc)}") from None
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise TransferFailed(f"{type(exc).__name__}: {_short(exc)}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    commit(part, dest, size=size, adler32=adler32, got_size=written,
           got_adler32=digest.hexdigest())


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"

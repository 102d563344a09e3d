"""Writing an upload's bytes to an RSE: over https (a WebDAV PUT, TLS verified against the CA
bundle, this process's storage credential presented) or, where the RSE's directory is on this
machine, as a verified local copy; then the size the storage holds is checked.

Rucio's own upload is not used: its WebDAV protocol sends every request with certificate checks
off, presenting the client certificate to whatever answers. Registering the file in the catalogue
is the Rucio adapter's (`RucioAdapter.upload`), which calls `remove` when that fails.

Which way: the RSE's write protocols in its priority order (`Target`s, made by the adapter); a
`file` protocol only when its directory exists here and is writable (the site's shared file
system), an `https`/`davs` one always (a worker that does not see that file system).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from . import materialise
from .errors import StorageTargetExists, StorageWriteError, TransferFailed, UntrustedStorage
from .storage_credentials import for_storage

CONNECT_TIMEOUT = 15.0
# After the last byte a storage may checksum or move a large file before it answers.
ANSWER_TIMEOUT = 300.0
WEB_SCHEMES = ("https", "davs")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")
_SSL_REASON = re.compile(r"\[SSL: [A-Z_]+\] ([^(')]+)")
CREDENTIAL_HINT = ("check that the storage accepts this process's credential for writing (the "
                   "X.509 proxy: $X509_USER_PROXY or client_x509_proxy in the Rucio "
                   "configuration; in token mode the bearer token)")


@dataclass(frozen=True)
class Target:
    """Where one write protocol of an RSE puts the file: its PFN and the protocol's prefix."""

    rse: str
    scheme: str
    pfn: str
    prefix: str

    @property
    def url(self) -> str:
        """The PFN as `requests` takes it (davs is WebDAV over https)."""
        return "https" + self.pfn[len("davs"):] if self.scheme == "davs" else self.pfn

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def local(self) -> Path | None:
        """The file's path here, for a `file` protocol whose directory is writable here."""
        if self.scheme != "file":
            return None
        root = Path(self.prefix)
        if root.is_dir() and os.access(root, os.W_OK | os.X_OK):
            return Path(unquote(urlsplit(self.pfn).path))
        return None


def write(path: Path, targets: Sequence[Target], *, size: int, adler32: str,
          verify: str | bool, exclusive: bool = False) -> Target:
    """Put `path` at the first usable target; returns it. Nothing is left behind on failure.

    `exclusive`: a file already at the target is left alone (StorageTargetExists): it is looked
    for first (a local file, a HEAD), and a PUT carries `If-None-Match: *`, which closes the
    moment between the two on storage that honours it (WsgiDAV, dCache; not XrdHttp 5.5)."""
    for target in targets:
        local = target.local()
        if local is not None:
            if exclusive and (local.exists() or local.is_symlink()):
                raise StorageTargetExists(f"{local} on {target.rse} exists already")
            _copy(path, local, target, size=size, adler32=adler32)
            return target
        if target.scheme in WEB_SCHEMES:
            _put(path, target, size=size, verify=verify, exclusive=exclusive)
            return target
    rse = targets[0].rse if targets else "the RSE"
    prefixes = ", ".join(t.prefix for t in targets if t.scheme == "file") or "none"
    raise StorageWriteError(
        f"no write protocol of {rse} is usable from this machine (schemes "
        f"{', '.join(t.scheme for t in targets) or 'none'}): a `file` protocol needs its "
        f"directory ({prefixes}) here and writable; otherwise the RSE needs an https protocol")


def remove(target: Target, *, verify: str | bool) -> None:
    """Delete what `write` put at `target` (gone already is fine)."""
    local = target.local()
    if local is not None:
        try:
            local.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageWriteError(f"cannot delete {local} on {target.rse}: "
                                    f"{exc.strerror or exc}") from None
        return
    reply = _request("DELETE", target, verify)
    if reply.status_code not in (200, 202, 204, 404):
        raise StorageWriteError(_refused("DELETE", target, reply))


def _copy(path: Path, dest: Path, target: Target, *, size: int, adler32: str) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        materialise.copy(path, dest, size=size, adler32=adler32)
        stored = dest.stat().st_size
    except (OSError, TransferFailed) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StorageWriteError(f"copying {path} to {dest} ({target.rse}'s directory on this "
                                f"machine) failed: {reason}") from None
    if stored != size:
        dest.unlink(missing_ok=True)
        raise StorageWriteError(f"{dest} on {target.rse} holds {stored} bytes after copying "
                                f"{size}; deleted again")


def _put(path: Path, target: Target, *, size: int, verify: str | bool, exclusive: bool) -> None:
    # Asked first as well: some storages ignore the condition (XrdHttp 5.5 writes over the file).
    if exclusive and _request("HEAD", target, verify).status_code == 200:
        raise StorageTargetExists(f"{target.origin} ({target.rse}) holds {target.url} already")
    condition = {"If-None-Match": "*"} if exclusive else {}
    try:
        with open(path, "rb") as body:
            # An empty stream would go chunked; an empty body has Content-Length 0.
            reply = _request("PUT", target, verify, data=body if size else b"",
                             headers=condition)
    except OSError as exc:
        raise StorageWriteError(f"cannot read {path} to upload it: {exc.strerror or exc}"
                                ) from None
    except UntrustedStorage:
        raise
    except StorageWriteError:
        _remove_quietly(target, verify)  # a connection lost mid-PUT may leave part of the file
        raise
    if reply.status_code == 412 and exclusive:
        raise StorageTargetExists(f"{target.origin} ({target.rse}) holds {target.url} already")
    if reply.status_code not in (200, 201, 204):  # refused: the storage wrote nothing
        raise StorageWriteError(_refused("PUT", target, reply))
    stored = _stored_size(target, verify)
    if stored != size:
        remove(target, verify=verify)
        raise StorageWriteError(
            f"{target.origin} ({target.rse}) holds {stored} bytes of {target.url} after a PUT of "
            f"{size}; deleted again; check the storage's free space and log")


def _remove_quietly(target: Target, verify: str | bool) -> None:
    with contextlib.suppress(StorageWriteError):
        remove(target, verify=verify)


def _stored_size(target: Target, verify: str | bool) -> int:
    reply = _request("HEAD", target, verify)
    length = reply.headers.get("Content-Length", "")
    if reply.status_code != 200 or not length.isdigit():
        raise StorageWriteError(
            f"{target.origin} ({target.rse}) did not tell the size of {target.url} after the "
            f"PUT (HEAD: HTTP {reply.status_code}, Content-Length {length or 'none'}); the upload "
            "cannot be checked")
    return int(length)


def _request(method: str, target: Target, verify: str | bool,
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
    """One request with TLS verified and the storage credential (neither is ever logged)."""
    credential = for_storage()
    try:
        return requests.request(method, target.url, verify=verify, cert=credential.cert,
                                headers={**credential.headers, **(headers or {})},
                                timeout=(CONNECT_TIMEOUT, ANSWER_TIMEOUT), **kwargs)
    except requests.exceptions.SSLError as exc:
        trusted = (f"the CA certificates in {verify}" if isinstance(verify, str)
                   else "the system's CA certificates")
        raise UntrustedStorage(
            f"TLS verification of {target.origin} ({target.rse}) failed, nothing was sent "
            f"({method}): {_tls_reason(exc)}; the storage must present a certificate for that host "
            f"issued by {trusted} (--storage-datalake-ca-bundle, else ca_cert in the Rucio "
            "configuration)") from None
    except requests.RequestException as exc:
        raise StorageWriteError(
            f"cannot {method} {target.url} ({target.rse}): {_network_reason(exc)}; check that "
            "the storage runs and is reachable from this machine") from None


def _refused(method: str, target: Target, reply: requests.Response) -> str:
    if reply.status_code in (401, 403):
        hint = CREDENTIAL_HINT
    elif reply.status_code in (413, 507):
        hint = "the storage has no room for it"
    else:
        hint = "see the storage's log"
    return (f"{target.origin} ({target.rse}) refused the {method} of {target.url}: HTTP "
            f"{reply.status_code} {reply.reason}; {hint}")


def _network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {ANSWER_TIMEOUT:.0f} s"
    found = _ERRNO.search(str(exc))
    return found.group(1).strip() if found else f"{type(exc).__name__}: {_short(exc)}"


def _tls_reason(exc: Exception) -> str:
    """`certificate verify failed: ...` rather than urllib3's nested reprs."""
    found = _SSL_REASON.search(str(exc))
    return found.group(1).strip() if found else _short(exc)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) < 300 else text[:300] + "…"

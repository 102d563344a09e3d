"""Copy one file between `file://` and `https://`/`davs://` URLs, checksumming while streaming.

Output is never left half-written: local copies go to a temporary name that is renamed into
place only once size and checksum are right; remote ones are deleted again on failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from . import remote
from .streams import (
    CHUNK,
    Aborted,
    Digest,
    Stream,
    TransferError,
    check_complete,
    exists_error,
    parse_checksum,
)

__all__ = ["Aborted", "CopyRequest", "CopyResult", "TransferError", "copy", "remove_partial"]

DEFAULT_TIMEOUT = 300.0
PERMANENT_ERRNOS = (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR)


@dataclass(frozen=True)
class CopyRequest:
    source: str
    destination: str
    checksum: str | None  # "ADLER32:0a1b2c3d", "adler32", "MD5:..." or None
    verify: str  # both | source | target | none
    overwrite: bool
    tag: str  # unique per file: names the temporary output so a restart can find it
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class CopyResult:
    size: int
    checksum: str
    seconds: float


def _is_local(url: str, side: str) -> bool:
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return True
    if scheme in remote.HTTP_SCHEMES:
        return False
    raise TransferError(
        side, errno.EPROTONOSUPPORT, f"Protocol not supported: {url}", recoverable=False
    )


def _path(url: str, side: str) -> Path:
    parsed = urlparse(url)
    if parsed.hostname not in (None, "", "localhost"):
        raise TransferError(side, errno.EINVAL, f"Not a local file URL: {url}", recoverable=False)
    return Path(unquote(parsed.path))


def _os_error(side: str, exc: OSError, what: str) -> TransferError:
    code = exc.errno or errno.EIO
    return TransferError(
        side, code, f"{what}: {os.strerror(code)}", recoverable=code not in PERMANENT_ERRNOS
    )


def temporary_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.part")


def _local_chunks(handle: Any, url: str) -> Iterator[bytes]:
    with handle:
        while True:
            try:
                data = handle.read(CHUNK)
            except OSError as exc:
                raise _os_error("SOURCE", exc, f"Failed to read {url}") from None
            if not data:
                return
            yield data


def _open_local(url: str) -> tuple[Iterator[bytes], int | None]:
    path = _path(url, "SOURCE")
    try:
        # Unbuffered, so a read returns what is there (pipes and growing files included).
        handle = open(path, "rb", buffering=0)  # closed by _local_chunks
    except OSError as exc:
        raise _os_error("SOURCE", exc, f"Failed to open {url}") from None
    size = os.fstat(handle.fileno()).st_size if path.is_file() else None
    return _local_chunks(handle, url), size


def _make_parent(path: Path, url: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # A file where a directory must be: ENOTDIR, not the "File exists" mkdir reports.
        raise TransferError(
            "DESTINATION",
            errno.ENOTDIR,
            f"Failed to create the parent directory of {url}: {os.strerror(errno.ENOTDIR)}",
            recoverable=False,
        ) from None


def _write_local(req: CopyRequest, stream: Stream, on_write: Callable[[], None]) -> None:
    path = _path(req.destination, "DESTINATION")
    if path.is_dir():
        raise TransferError(
            "DESTINATION", errno.EISDIR, f"{req.destination} is a directory", recoverable=False
        )
    if path.exists() and not req.overwrite:
        raise exists_error()
    temp = temporary_path(path, req.tag)
    try:
        _make_parent(path, req.destination)
        on_write()
        with open(temp, "wb") as out:
            for chunk in stream:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        check_complete(stream, req.source, req.checksum, req.verify)
        if stream.aborted():
            raise Aborted
        if req.overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # atomic "create only if absent"
            except FileExistsError:
                raise exists_error() from None
    except OSError as exc:
        raise _os_error("DESTINATION", exc, f"Failed to write {req.destination}") from None
    finally:
        # Best effort: where the directory cannot be made (a file in the way, ENOTDIR) there is
        # no temporary file either, and the reason to report is the one above.
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def copy(
    req: CopyRequest,
    *,
    abort: Callable[[], bool],
    ca_bundle: str | None = None,
    on_write: Callable[[], None] = lambda: None,
    bearer: str | None = None,
) -> CopyResult:
    """Copy `req.source` to `req.destination`; raises TransferError or Aborted.

    `abort` is polled between chunks; `on_write` is called just before the destination may
    start to hold bytes, so a restart knows there may be something to clean up. `bearer`: the
    submitter's token, presented to https storage instead of the service's certificate.
    """
    started = time.monotonic()
    ca: str | bool = ca_bundle or True
    algorithm, _ = parse_checksum(req.checksum)
    local_dest = _is_local(req.destination, "DESTINATION")
    with remote.client_session(bearer) as session:
        if _is_local(req.source, "SOURCE"):
            chunks, size = _open_local(req.source)
        else:
            chunks, size = remote.open_source(req.source, session, ca, req.timeout)
        stream = Stream(chunks, size, Digest(algorithm), abort)
        try:
            if local_dest:
                _write_local(req, stream, on_write)
            else:
                remote.write(
                    req.destination,
                    stream,
                    source=req.source,
                    checksum=req.checksum,
                    verify=req.verify,
                    overwrite=req.overwrite,
                    session=session,
                    ca=ca,
                    timeout=req.timeout,
                    on_write=on_write,
                )
        finally:
            stream.close()
    digest = stream.digest
    return CopyResult(
        stream.count, f"{digest.algorithm}:{digest.hexdigest()}", time.monotonic() - started
    )


def remove_partial(
    url: str, tag: str, ca_bundle: str | None = None, bearer: str | None = None
) -> None:
    """After a crash mid-copy: drop the temporary file, or the half-written remote file."""
    try:
        if _is_local(url, "DESTINATION"):
            temporary_path(_path(url, "DESTINATION"), tag).unlink(missing_ok=True)
        else:
            with remote.client_session(bearer) as session:
                remote.delete(url, session, ca_bundle or True)
    except (TransferError, OSError):
        pass

"""Copy one file between `file://`, `https://`/`davs://` and `root://` URLs with gfal2.

Like FTS, which hands every transfer to an `fts_url_copy` process driving gfal2, the bytes are
moved by gfal2 in a helper process (gfal_copy.py) run with the interpreter python3-gfal2 was
built for. This module decides what the helper may touch and cleans up after it:

- `file://` URLs are checked against the storage roots again right before the copy, on their
  resolved real path (a symlink swapped in after submission is caught); the helper then opens
  the source without following links and checks the path of the file it holds open before
  gfal2 reads it through that open file, and checks the destination's directory again;
- a local destination is written under a temporary name and linked into place only after
  gfal2 has verified it, so it is never seen half-written; a remote one that a failed,
  canceled or timed-out copy may have left is deleted;
- the credential is the job's: the service's certificate (X509_USER_PROXY) for certificate
  jobs, the submitter's bearer token for token jobs, passed on the helper's stdin only;
- the testbed CA is trusted through a hashed CA directory (X509_CERT_DIR), as grid clients do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .streams import Aborted, TransferError, exists_error, parse_checksum

__all__ = ["Aborted", "CopyRequest", "CopyResult", "Gfal", "TransferError", "copy"]

DEFAULT_TIMEOUT = 300.0
HELPER = Path(__file__).with_name("gfal_copy.py")
DEBIAN_PYTHON = "/usr/bin/python3"  # the interpreter Debian's python3-gfal2 is built for
SCHEMES = ("file", "https", "davs", "root", "xroot")
PERMANENT_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EINVAL,
    errno.EPROTONOSUPPORT,
    errno.ENOSYS,
}
POLL_SECONDS = 0.1
HELPER_GRACE_SECONDS = 60.0  # stat and checksum calls around the copy, beyond its own timeout
CREDENTIAL_VARIABLES = ("X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY", "BEARER_TOKEN")


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


@dataclass(frozen=True)
class Gfal:
    """How to reach gfal2: the interpreter with python3-gfal2, the storage roots that bound
    `file://` URLs, and the CA directory that holds the CAs storage certificates come from."""

    roots: Sequence[Path] = ()
    ca_dir: str | None = None
    python: str = DEBIAN_PYTHON


def _scheme(url: str, side: str) -> str:
    scheme = urlparse(url).scheme.lower()
    if scheme not in SCHEMES:
        raise TransferError(
            side, errno.EPROTONOSUPPORT, f"Protocol not supported: {url}", recoverable=False
        )
    return scheme


def local_path(url: str, side: str, roots: Sequence[Path]) -> Path:
    """The real path a `file://` URL leads to, if it is under one of the roots."""
    parsed = urlparse(url)
    if parsed.hostname not in (None, "", "localhost"):
        raise TransferError(side, errno.EINVAL, f"Not a local file URL: {url}", recoverable=False)
    path = Path(os.path.realpath(unquote(parsed.path)))
    if not any(path.is_relative_to(root) for root in roots):
        raise TransferError(
            side, errno.EACCES, f"Local path outside the storage roots: {url}", recoverable=False
        )
    return path


def temporary_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.part")


def _environment(gfal: Gfal, token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if token is not None:  # the token instead of the service's certificate
        for name in CREDENTIAL_VARIABLES:
            env.pop(name, None)
    if gfal.ca_dir:
        env["X509_CERT_DIR"] = gfal.ca_dir
    env["LOFAR_FTS_PARENT"] = str(os.getpid())
    return env


class _Helper:
    """One running gfal_copy.py: its request on stdin, its JSON lines read as they come."""

    def __init__(self, gfal: Gfal, request: dict[str, Any], errors: Any) -> None:
        self.token = request.get("token")
        self.timeout = request["timeout"]
        self.process = subprocess.Popen(
            [gfal.python, str(HELPER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=_environment(gfal, self.token),
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self._pending = b""
        self.send(json.dumps(request))

    def send(self, line: str, *, last: bool = False) -> None:
        with contextlib.suppress(BrokenPipeError):  # it has died: its status says why
            self.stdin.write(line.encode() + b"\n")
            self.stdin.flush()
            if last:
                self.stdin.close()

    def lines(self, timeout: float) -> list[dict[str, Any]] | None:
        """The messages that arrived within `timeout`; None once the helper closed stdout."""
        ready, _, _ = select.select([self.stdout], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(self.stdout.fileno(), 65536)
        if not chunk:
            return None
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        messages = []
        for line in complete:
            with contextlib.suppress(ValueError):
                messages.append(json.loads(line))
        return messages

    def follow(
        self, abort: Callable[[], bool], deadline: float, on_write: Callable[[], None]
    ) -> dict[str, Any] | None:
        """Its answer, once it has ended; lets it write after `on_write`; kills it on abort."""
        answer = None
        while (messages := self.lines(POLL_SECONDS)) is not None:
            for message in messages:
                if message.get("writing"):
                    on_write()
                    self.send("write", last=True)
                else:
                    answer = message
            if abort():
                self.kill()
                raise Aborted
            if time.monotonic() > deadline:
                self.kill()
                raise TransferError(
                    "TRANSFER", errno.ETIMEDOUT, f"Transfer timed out after {self.timeout} s"
                )
        self.process.wait()
        return answer

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def _helper(
    gfal: Gfal,
    request: dict[str, Any],
    abort: Callable[[], bool],
    deadline: float,
    on_write: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run gfal_copy.py on `request`; kill it on abort (Aborted) or past the deadline.

    `on_write` runs when the helper asks to start writing the destination; the helper waits
    for it, so a restart always knows whether there may be something to clean up."""
    with tempfile.TemporaryFile() as errors:
        helper = _Helper(gfal, request, errors)
        try:
            answer = helper.follow(abort, deadline, on_write)
        finally:
            helper.close()
        if helper.process.returncode == 0 and answer is not None:
            return answer
        errors.seek(0)
        detail = " ".join(errors.read().decode(errors="replace").split()[-40:])
    if helper.token:
        detail = detail.replace(helper.token, "<token>")
    raise TransferError(
        "TRANSFER",
        errno.EIO,
        f"the gfal2 copy process ({gfal.python}) ended with status "
        f"{helper.process.returncode}: {detail or 'no output'}",
    )


def _failed(answer: dict[str, Any], req: CopyRequest) -> TransferError:
    """gfal2's reason as FTS words it, naming the URL of the side that failed, or both."""
    side, code, message = answer["side"], int(answer["errno"]), answer["message"]
    urls = {"SOURCE": req.source, "DESTINATION": req.destination}
    where = urls.get(side, f"copying {req.source} to {req.destination}")
    if where not in message:
        message += f" ({where})"
    if answer.get("removed"):
        message += "; the destination was removed"
    return TransferError(side, code, message, recoverable=code not in PERMANENT_ERRNOS)


def checksum_mode(verify: str, value: str | None) -> str:
    """gfal2's mode: `both` compares source and destination as the storage reports them (and
    the user's value if given); `source`/`target` compare one side with the user's value, so
    without one there is nothing to compare."""
    if verify in ("source", "target") and value is None:
        return "none"
    return verify


def _gfal_request(
    req: CopyRequest, gfal: Gfal, source: str, destination: str, **extra: Any
) -> dict[str, Any]:
    algorithm, value = parse_checksum(req.checksum)
    return {
        "op": "copy",
        "source": source,
        "destination": destination,
        "checksum_mode": checksum_mode(req.verify, value),
        "algorithm": algorithm.upper(),
        "value": value,
        "overwrite": req.overwrite,
        "timeout": max(1, int(req.timeout)),
        "proxy": os.environ.get("X509_USER_PROXY"),
        "roots": [str(root) for root in gfal.roots],
        **extra,
    }


def _place(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the verified temporary copy to its final name; create-only without overwrite."""
    if os.path.realpath(path.parent) != str(path.parent):  # swapped for a symlink meanwhile
        raise TransferError(
            "DESTINATION", errno.EACCES, f"{path.parent} changed during the copy", recoverable=False
        )
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic "create only if absent"
    except FileExistsError:
        raise exists_error() from None


def _local_destination(req: CopyRequest, gfal: Gfal) -> Path:
    path = local_path(req.destination, "DESTINATION", gfal.roots)
    if path.is_dir():
        raise TransferError(
            "DESTINATION", errno.EISDIR, f"{req.destination} is a directory", recoverable=False
        )
    if path.exists() and not req.overwrite:
        raise exists_error()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise TransferError(
            "DESTINATION",
            errno.ENOTDIR,
            f"Failed to create the parent directory of {req.destination}: "
            f"{os.strerror(errno.ENOTDIR)}",
            recoverable=False,
        ) from None
    return path


def copy(
    req: CopyRequest,
    *,
    abort: Callable[[], bool],
    gfal: Gfal,
    on_write: Callable[[], None] = lambda: None,
    bearer: str | None = None,
) -> CopyResult:
    """Copy `req.source` to `req.destination` with gfal2; raises TransferError or Aborted.

    `abort` is polled while gfal2 works; `on_write` is called just before the destination may
    start to hold bytes, so a restart knows there may be something to clean up. `bearer`: the
    submitter's token, presented to https storage instead of the service's certificate.
    """
    started = time.monotonic()
    source, destination = req.source, req.destination
    if _scheme(source, "SOURCE") == "file":
        source = local_path(source, "SOURCE", gfal.roots).as_uri()
    path = temp = None
    if _scheme(destination, "DESTINATION") == "file":
        path = _local_destination(req, gfal)
        temp = temporary_path(path, req.tag)
        destination = temp.as_uri()
    overwrite = req.overwrite or temp is not None  # the temporary name is ours
    request = _gfal_request(req, gfal, source, destination, overwrite=overwrite, token=bearer)
    deadline = started + req.timeout + HELPER_GRACE_SECONDS
    touched: list[bool] = []

    def writing() -> None:
        touched.append(True)
        on_write()

    try:
        try:
            answer = _helper(gfal, request, abort, deadline, writing)
            if answer["ok"] and abort():
                raise Aborted
        except (Aborted, TransferError):  # killed, or gone without an answer: clean up after it
            if temp is None and touched:
                remove_partial(req.destination, req.tag, gfal, bearer)
            raise
        if not answer["ok"]:  # the helper has removed what its failed copy left
            raise _failed(answer, req)
        if path is not None and temp is not None:
            _place(temp, path, req.overwrite)
    except OSError as exc:
        code = exc.errno or errno.EIO
        raise TransferError(
            "DESTINATION",
            code,
            f"Failed to write {req.destination}: {os.strerror(code)}",
            recoverable=code not in PERMANENT_ERRNOS,
        ) from None
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
    algorithm = parse_checksum(req.checksum)[0]
    checksum = f"{algorithm}:{answer['checksum']}" if answer["checksum"] else "not verified"
    return CopyResult(int(answer["size"]), checksum, time.monotonic() - started)


def remove_partial(
    url: str, tag: str, gfal: Gfal, bearer: str | None = None, timeout: float = 60.0
) -> None:
    """After a failed or interrupted copy: drop the temporary file, or the remote file."""
    try:
        if _scheme(url, "DESTINATION") == "file":
            temporary_path(local_path(url, "DESTINATION", gfal.roots), tag).unlink(missing_ok=True)
            return
        request = {"op": "rm", "source": url, "destination": url, "timeout": int(timeout)}
        request.update(proxy=os.environ.get("X509_USER_PROXY"), token=bearer)
        _helper(gfal, request, lambda: False, time.monotonic() + timeout)
    except (TransferError, OSError):
        pass  # best effort: the copy has already failed for a reason worth reporting

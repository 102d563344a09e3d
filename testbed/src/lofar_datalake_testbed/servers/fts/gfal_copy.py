"""One transfer through gfal2, in a process of its own: the part fts_url_copy plays in FTS.

Run by the FTS service as `<Debian's python3> gfal_copy.py` (python3-gfal2 is built for that
interpreter, not the service's), one process per copy, so a cancel or a timeout is a kill and
a crash in gfal2 takes down one transfer, not the service. Standard library and gfal2 only.

The request comes as one JSON line on stdin, never in the argument list or the environment,
because it may carry the submitter's bearer token:
  {"op": "copy" | "rm", "source", "destination", "checksum_mode": both|source|target|none,
   "algorithm", "value", "overwrite", "timeout", "proxy": PEM or null, "token": str or null,
   "roots": the storage roots `file://` URLs must stay under}
Before the destination may hold bytes it says {"writing": true} on stdout and waits for the
line "write" on stdin (the service records first that there may be something to clean up);
then it answers with one JSON line: {"ok": true, "size", "checksum"} or {"ok": false, "side":
SOURCE|DESTINATION|TRANSFER, "errno", "message", "removed"}.

As fts_url_copy does: the certificate (`proxy`) is gfal2's X509 CERT and KEY; a token is a
BEARER credential for the source and destination URLs instead; the source is stat'ed first, an
existing destination is refused unless overwrite is set, gfal2 copies with the checksum mode and
user checksum given, and a destination left by a failed copy is removed. Third-party copy is
off: the testbed's storage does not offer HTTP-TPC, so bytes stream through this process.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys
from typing import Any
from urllib.parse import unquote, urlparse

import gfal2  # type: ignore[import-not-found]  # Debian's python3-gfal2

# streams.EXISTS_MESSAGE, word for word (Rucio matches it); this script imports no package.
EXISTS_MESSAGE = "Destination file exists and overwrite is not enabled"
HTTP_SCHEMES = ("https", "davs")
ROOT_SCHEMES = ("root", "xroot", "roots")
PR_SET_PDEATHSIG = 1


class Failure(Exception):
    def __init__(self, side: str, code: int, message: str) -> None:
        super().__init__(message)
        self.side, self.code, self.message = side, code, message
        self.removed = False


def die_with_parent(parent: int) -> None:
    """Killed when the service's copy thread is gone (a crashed service leaves no copier)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def uses_root(request: dict[str, Any]) -> bool:
    urls = (request["source"], request["destination"])
    return any(url.split(":", 1)[0].lower() in ROOT_SCHEMES for url in urls)


def context(request: dict[str, Any]) -> Any:
    """gfal2 with the job's credential: the service's PEM as gfal2's X509 CERT and KEY (as
    fts_url_copy sets it), or the submitter's token as a BEARER credential for https URLs.
    Where a side is root://, the PEM goes to XRootD's gsi as a plain certificate (X509_USER_CERT
    and KEY, no proxy made from it, before gfal2 loads XRootD's client): gfal2's xrootd plugin
    would present it as a proxy, which gsi in XRootD 5.5 refuses, and write anonymously."""
    proxy = request.get("proxy")
    if proxy and uses_root(request):
        os.environ.update(X509_USER_CERT=proxy, X509_USER_KEY=proxy, XrdSecGSICREATEPROXY="0")
        os.environ["X509_USER_PROXY"] = proxy + ".not-a-proxy"  # else gsi reads the PEM as one
    ctx = gfal2.creat_context()
    ctx.set_user_agent("lofar-datalake-fts", "1")
    ctx.set_opt_boolean("HTTP PLUGIN", "ENABLE_REMOTE_COPY", False)
    ctx.set_opt_boolean("HTTP PLUGIN", "RETRIEVE_BEARER_TOKEN", False)
    timeout = int(request["timeout"])
    ctx.set_opt_integer("CORE", "NAMESPACE_TIMEOUT", timeout)
    ctx.set_opt_integer("CORE", "CHECKSUM_TIMEOUT", timeout)
    if proxy and not uses_root(request):
        ctx.set_opt_string("X509", "CERT", proxy)
        ctx.set_opt_string("X509", "KEY", proxy)
    token = request.get("token")
    if token:
        for url in (request["source"], request["destination"]):
            if url.split(":", 1)[0].lower() in HTTP_SCHEMES:
                ctx.cred_set(url, gfal2.cred_new("BEARER", token))
    return ctx


def side_of(message: str, default: str) -> str:
    head = message.lstrip("[ ").upper()
    if head.startswith(("SOURCE", "COULD NOT OPEN SOURCE", "COULD NOT GET THE SOURCE")):
        return "SOURCE"
    if head.startswith(("DESTINATION", "COULD NOT OPEN DESTINATION")):
        return "DESTINATION"
    if head.startswith("TRANSFER"):
        return "TRANSFER"
    return default


def failure(exc: Any, default: str) -> Failure:
    message = " ".join(str(exc.message).split())
    return Failure(side_of(message, default), exc.code or errno.EIO, message)


def exists(ctx: Any, url: str) -> bool:
    try:
        ctx.stat(url)
    except gfal2.GError as exc:
        if exc.code == errno.ENOENT:
            return False
        raise failure(exc, "DESTINATION") from None
    return True


def transfer_parameters(ctx: Any, request: dict[str, Any]) -> Any:
    params = ctx.transfer_parameters()
    params.overwrite = bool(request["overwrite"])
    params.create_parent = True
    params.timeout = int(request["timeout"])
    mode = request["checksum_mode"]
    if mode != "none":
        value = request.get("value") or ""
        params.set_checksum(getattr(gfal2.checksum_mode, mode), request["algorithm"], value)
    return params


def remove(ctx: Any, url: str) -> bool:
    try:
        ctx.unlink(url)
    except gfal2.GError:
        return False
    return True


def inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def pinned_source(url: str, roots: list[str]) -> str:
    """A `file://` source opened now, checked by the path the kernel gives the open file, and
    handed to gfal2 as that open file (/proc/self/fd/N): a symlink or directory swapped in
    after the service checked the path cannot make gfal2 read anything else."""
    if not url.startswith("file:"):
        return url
    path = unquote(urlparse(url).path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # no wait on pipes
    except OSError as exc:
        code = errno.EACCES if exc.errno == errno.ELOOP else exc.errno or errno.EIO
        raise Failure("SOURCE", code, f"Could not open source: {os.strerror(code)}") from None
    if not inside(os.readlink(f"/proc/self/fd/{fd}"), roots):
        raise Failure("SOURCE", errno.EACCES, "Local path outside the storage roots")
    return f"file:///proc/self/fd/{fd}"


def check_destination(url: str, roots: list[str]) -> None:
    """A `file://` destination's directory is still where the service checked it."""
    if not url.startswith("file:"):
        return
    directory = os.path.dirname(unquote(urlparse(url).path))
    if os.path.realpath(directory) != directory or not inside(directory, roots):
        raise Failure("DESTINATION", errno.EACCES, "Local path outside the storage roots")


def copy(ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
    source, destination = request["source"], request["destination"]
    source = pinned_source(source, request["roots"])
    check_destination(destination, request["roots"])
    try:
        ctx.stat(source)
    except gfal2.GError as exc:
        raise failure(exc, "SOURCE") from None
    if not request["overwrite"] and exists(ctx, destination):
        raise Failure("DESTINATION", errno.EEXIST, EXISTS_MESSAGE)
    say({"writing": True})  # from here on the destination may hold bytes of this copy...
    if sys.stdin.readline().strip() != "write":  # ...once the service has noted that
        raise Failure("TRANSFER", errno.ECANCELED, "the service did not let the copy start")
    try:
        ctx.filecopy(transfer_parameters(ctx, request), source, destination)
        size = ctx.stat(destination).st_size
        checksum = ""
        if request["checksum_mode"] != "none":
            checksum = ctx.checksum(destination, request["algorithm"]).lower()
    except gfal2.GError as exc:
        caught = failure(exc, "TRANSFER")
        caught.removed = caught.code != errno.EEXIST and remove(ctx, destination)
        raise caught from None
    return {"ok": True, "size": size, "checksum": checksum}


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run(request: dict[str, Any]) -> dict[str, Any]:
    ctx = context(request)
    try:
        if request["op"] == "rm":
            return {"ok": remove(ctx, request["destination"])}
        return copy(ctx, request)
    except Failure as exc:
        answer = {"side": exc.side, "errno": exc.code, "message": exc.message}
        return {"ok": False, **answer, "removed": exc.removed}


def main() -> int:
    die_with_parent(int(os.environ.get("LOFAR_FTS_PARENT", os.getppid())))
    request = json.loads(sys.stdin.readline())
    say(run(request))
    return 0


if __name__ == "__main__":
    sys.exit(main())

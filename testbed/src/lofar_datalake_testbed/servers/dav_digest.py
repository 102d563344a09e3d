"""Checksums reported by the storage, as dCache, EOS, StoRM and XRootD's HTTP door report them.

A client asks with `Want-Digest: adler32` (RFC 3230) on HEAD or GET and the answer carries
`Digest: adler32=0a1b2c3d` (md5 base64-encoded, as the IANA registry says). gfal2's HTTP
plugin, and so FTS, gets a file's checksum only this way: without it a checksum-verified
transfer to or from this storage fails with "checksum calculation ... not supported".
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .dav_paths import local_path

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
CHUNK = 1 << 20


def wanted(header: str) -> list[str]:
    """The algorithms a Want-Digest header asks for that this storage knows, in its order."""
    names = []
    for item in header.split(","):
        name, _, quality = item.strip().partition(";")
        name = name.strip().lower()
        if name in ("adler32", "md5") and quality.strip().replace(" ", "") != "q=0":
            names.append(name)
    return names


def digest(path: Path, algorithm: str) -> str:
    """`algorithm=value` of the file's bytes, as the Digest header carries it."""
    adler, md5 = 1, hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while data := handle.read(CHUNK):
            if algorithm == "md5":
                md5.update(data)
            else:
                adler = zlib.adler32(data, adler)
    if algorithm == "md5":
        return "md5=" + base64.b64encode(md5.digest()).decode()
    return f"adler32={adler:08x}"


def report_digests(app: WsgiApp, root: Path) -> WsgiApp:
    """Add `Digest` to successful HEAD and GET answers for regular files when asked."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        names = wanted(environ.get("HTTP_WANT_DIGEST", ""))
        if not names or environ.get("REQUEST_METHOD") not in ("HEAD", "GET"):
            return app(environ, start_response)
        path = local_path(root, environ.get("PATH_INFO", ""))

        def with_digest(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if status.startswith("200") and path is not None and path.is_file():
                headers = [*headers, ("Digest", ",".join(digest(path, n) for n in names))]
            return start_response(status, headers, *rest)

        return app(environ, with_digest)

    return wrapped

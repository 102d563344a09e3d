"""The testbed's WebDAV server with one fault: it alters what it stores (run by test_fts_gfal2.py).

`python altering_webdav.py <the options of lofar_datalake_testbed.servers.webdav>`: the same
server process, TLS, authorisation and Want-Digest checksums, but the first byte of every PUT
body is inverted on its way to the disk, as failing hardware or a buggy storage might do. The
checksum it reports is the one of the bytes it really holds, so a client that compares source
and destination checksums sees the damage.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from lofar_datalake_testbed.servers import webdav


class AlteredInput:
    """A request body whose first byte comes out inverted."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._first = True

    def _alter(self, data: bytes) -> bytes:
        if self._first and data:
            self._first = False
            return bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def read(self, *args: Any) -> bytes:
        return self._alter(self._stream.read(*args))

    def readline(self, *args: Any) -> bytes:
        return self._alter(self._stream.readline(*args))


def altering(app: webdav.WsgiApp) -> webdav.WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT":
            environ["wsgi.input"] = AlteredInput(environ["wsgi.input"])
        return app(environ, start_response)

    return wrapped


def main() -> int:
    build_app = webdav.build_app
    webdav.build_app = lambda *args, **kwargs: altering(build_app(*args, **kwargs))
    return webdav.main()


if __name__ == "__main__":
    sys.exit(main())

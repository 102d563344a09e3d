"""What every copy shares: FTS-style errors, checksums, and the byte stream between two ends.

Reasons read like FTS's ("SOURCE [2] ...", "DESTINATION [17] ...") because Rucio matches on
them, e.g. on "Destination file exists and overwrite is not enabled".
"""

from __future__ import annotations

import errno
import hashlib
import zlib
from collections.abc import Callable, Iterator

CHUNK = 1 << 20
EXISTS_MESSAGE = "Destination file exists and overwrite is not enabled"
ALGORITHMS = ("adler32", "md5")


class TransferError(Exception):
    def __init__(self, scope: str, code: int, message: str, *, recoverable: bool = True) -> None:
        super().__init__(f"{scope} [{code}] {message}")
        self.recoverable = recoverable


class Aborted(Exception):
    """The copy was stopped on request (cancel or shutdown); partial output is gone."""


def exists_error() -> TransferError:
    return TransferError("DESTINATION", errno.EEXIST, EXISTS_MESSAGE, recoverable=False)


def parse_checksum(text: str | None) -> tuple[str, str | None]:
    """'ADLER32:1a2b' -> ('adler32', '00001a2b'); a bare algorithm has no value."""
    if not text:
        return "adler32", None
    algorithm, _, value = text.partition(":")
    algorithm = algorithm.strip().lower()
    value = value.strip().lower()
    if algorithm == "adler32" and value:
        value = value.zfill(8)  # Rucio and FTS both drop leading zeros at times
    return algorithm, value or None


class Digest:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm if algorithm in ALGORITHMS else "adler32"
        self._adler = 1
        self._md5 = hashlib.md5(usedforsecurity=False) if self.algorithm == "md5" else None

    def update(self, data: bytes) -> None:
        if self._md5 is not None:
            self._md5.update(data)
        else:
            self._adler = zlib.adler32(data, self._adler)

    def hexdigest(self) -> str:
        return self._md5.hexdigest() if self._md5 is not None else f"{self._adler:08x}"


class Stream:
    """Source bytes on their way to the destination: hashed, counted, and abortable per chunk.

    It is both iterable and file-like with a length, so `requests` can PUT it with a
    Content-Length when the source size is known.
    """

    def __init__(
        self, chunks: Iterator[bytes], size: int | None, digest: Digest, abort: Callable[[], bool]
    ) -> None:
        self._chunks = chunks
        self._abort = abort
        self.size = size
        self.digest = digest
        self.count = 0
        self.error: BaseException | None = None  # kept: requests may wrap what we raise

    def aborted(self) -> bool:
        return bool(self._abort())

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def __len__(self) -> int:
        return self.size or 0

    def read(self, _size: int = -1) -> bytes:
        try:
            if self.aborted():
                raise Aborted
            data = next(self._chunks, b"")
        except BaseException as exc:
            self.error = exc
            raise
        self.digest.update(data)
        self.count += len(data)
        return data

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def check_complete(stream: Stream, source: str, checksum: str | None, verify: str) -> None:
    """After the last byte: all of the source arrived, and its checksum is the expected one."""
    if stream.size is not None and stream.count != stream.size:
        raise TransferError(
            "TRANSFER", errno.EIO, f"read {stream.count} of {stream.size} bytes from {source}"
        )
    algorithm, expected = parse_checksum(checksum)
    if verify == "none" or expected is None:
        return
    if algorithm not in ALGORITHMS:
        raise TransferError(
            "TRANSFER", errno.EINVAL, f"Unsupported checksum {algorithm}", recoverable=False
        )
    actual = stream.digest.hexdigest()
    if actual != expected:
        name = algorithm.upper()
        raise TransferError(
            "TRANSFER",
            errno.EIO,
            f"checksum mismatch: user defined {name} {expected} != {name} {actual} of {source}",
        )

"""adler32, the checksum Rucio and FTS use for every file, computed in streaming fashion."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def adler32_of_file(path: Path) -> str:
    """Eight lowercase hex digits, zero-padded: Rucio's canonical form."""
    value = 1
    buffer = bytearray(CHUNK)  # one buffer for the whole file: no allocation per chunk
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            value = zlib.adler32(view[:n], value)
    return f"{value & 0xFFFFFFFF:08x}"


def sha256_of_file(path: Path) -> str:
    """Hex sha256, for products compared or recorded byte for byte."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_adler32(value: str) -> str:
    """Accept `ADLER32:1a2b`, `adler32:1a2b` or `1a2b`; return eight lowercase hex digits."""
    text = value.split(":", 1)[1] if ":" in value else value
    return f"{int(text, 16):08x}"


class Adler32:
    """Incremental adler32, for data checksummed while it streams past."""

    def __init__(self) -> None:
        self._value = 1

    def update(self, chunk: bytes) -> None:
        self._value = zlib.adler32(chunk, self._value)

    def hexdigest(self) -> str:
        return f"{self._value & 0xFFFFFFFF:08x}"


def same_adler32(a: str | None, b: str | None) -> bool:
    """Equal checksums; None (unknown) never matches."""
    return a is not None and b is not None and normalise_adler32(a) == normalise_adler32(b)

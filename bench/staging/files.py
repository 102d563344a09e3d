"""Big test files in the DataLake without uploading them: bytes are written (or hard-linked) where
the RSE keeps each DID and registered with one bulk `add_replicas` (the lofar account may not
delete replicas, so a benchmark's DIDs stay in the catalogue; their bytes are removed)."""

from __future__ import annotations

import errno
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

from datalake_core.rucio_adapter import Did, RucioAdapter

SCOPE = "lofar"
BLOCK = 4 * 2**20


@dataclass(frozen=True)
class Blob:
    path: Path
    size: int
    adler32: str


def write_random(path: Path, size: int) -> Blob:
    """Incompressible enough for disk and TLS (a random pool, each block stamped with its
    offset so no two blocks are equal), far faster to make than GiBs of os.urandom."""
    pool = os.urandom(BLOCK + 4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    value, written = 1, 0
    with open(path, "wb") as out:
        while written < size:
            start = (written // BLOCK * 4099) % 4096
            block = bytearray(pool[start:start + min(BLOCK, size - written)])
            block[:8] = written.to_bytes(8, "little")[: len(block[:8])]
            out.write(block)
            value = zlib.adler32(block, value)
            written += len(block)
    return Blob(path, size, f"{value & 0xFFFFFFFF:08x}")


def pfns(rucio: RucioAdapter, rse: str, names: list[str], scheme: str) -> dict[str, str]:
    """Each DID's URL on `rse` through the protocol `scheme`."""
    from rucio.rse import rsemanager  # type: ignore[import-untyped]

    found = rsemanager.lfns2pfns(rucio.rse_info(rse),
                                 [{"scope": SCOPE, "name": n} for n in names],
                                 operation="read", scheme=scheme)
    return {n: str(found[f"{SCOPE}:{n}"]) for n in names}


def rse_paths(rucio: RucioAdapter, rse: str, names: list[str]) -> dict[str, Path]:
    """Where `rse` keeps each DID on this machine (its `file` protocol)."""
    return {n: Path(u.removeprefix("file://")) for n, u in pfns(rucio, rse, names, "file").items()}


def rse_dir(rucio: RucioAdapter, rse: str) -> Path:
    """The directory behind the RSE's `file` protocol: what a site mounts."""
    for proto in rucio.rse_info(rse)["protocols"]:
        if proto["scheme"] == "file":
            return Path(proto["prefix"])
    raise SystemExit(f"{rse} has no file protocol")


def register(rucio: RucioAdapter, rse: str, blobs: dict[str, Blob]) -> list[Path]:
    """Make each blob the replica of DID `lofar:<name>` on `rse` (a hard link: no bytes are
    copied, so fresh DIDs per repetition cost nothing) and register them in bulk."""
    paths = rse_paths(rucio, rse, list(blobs))
    files = []
    for name, blob in blobs.items():
        path = paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob.path, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(blob.path, path)  # scratch space on another file system
        files.append({"scope": SCOPE, "name": name, "bytes": blob.size,
                      "adler32": blob.adler32})
    rucio.add_replicas(rse, files)
    return list(paths.values())


def dids(names: list[str]) -> list[Did]:
    return [Did(SCOPE, n) for n in names]


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

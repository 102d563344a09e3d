"""Uploads and downloads of one replica, for `RucioAdapter` (which mixes this class in).

The bytes never go through Rucio's own upload and download clients: their WebDAV protocol
verifies no certificate and presents the client certificate to whoever answers. They go through
the storage adapters instead (`storage_write` for writes, `transfer_http` and `materialise` for
reads, TLS verified); Rucio is asked only what the catalogue must say or record, through the
adapter's own catalogue methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from . import storage_write
from .checksums import adler32_of_file, same_adler32
from .did import Did
from .errors import AlreadyExists, DataLakeError, NotFound, StorageWriteError, TransferFailed
from .materialise import copy
from .transfer_http import fetch

if TYPE_CHECKING:
    from .rucio_adapter import RucioAdapter


class ReplicaIO:
    """Uploads and downloads of one replica; mixed into RucioAdapter, whose catalogue methods
    it calls."""

    def upload(self, path: Path, did: Did, rse: str, *,
               verify: str | bool | None = None, lifetime: int | None = None) -> str:
        """Upload one file and register it as Rucio's upload client does: the bytes onto `rse`
        (storage_write: TLS verified against `verify`, default the CA the Rucio client trusts),
        their size checked, then a replica with bytes and adler32 and, for a new file, a rule
        on `rse` for this account (expiring after `lifetime` seconds, if given). Returns the
        adler32.

        A failed upload registers nothing: if registering fails, the bytes written are deleted
        again. A file registered already with the same adler32 gains a replica on `rse`
        (nothing is done if it has one); with another adler32 it is an error."""
        rucio = cast("RucioAdapter", self)  # the class this is mixed into
        size, checksum = path.stat().st_size, adler32_of_file(path)
        existing = rucio.get_metadata(did)
        if existing is not None:
            if not same_adler32(existing.get("adler32"), checksum):
                raise AlreadyExists(f"{did} is registered with adler32 {existing.get('adler32')}"
                                    f" but {path} has {checksum}; Rucio files are immutable")
            if rucio.has_replica(did, rse):
                return checksum
        tls = rucio.storage_tls() if verify is None else verify
        written = _write(rucio, path, did, rse, size, checksum, tls, exclusive=False)
        try:
            rucio.add_replicas(rse, [{**did.as_dict(), "bytes": size, "adler32": checksum}])
        except DataLakeError as exc:
            raise type(exc)(f"{exc}; {_undo(rucio, did, written, tls)}") from None
        if existing is None:
            try:
                rucio.keep_on(did, rse, lifetime)
            except DataLakeError as exc:
                raise type(exc)(f"{exc}; {did} is registered on {rse} without a rule keeping it "
                                "there") from None
        return checksum

    def upload_into(self, path: Path, did: Did, rse: str, dataset: Did, *,
                    size: int, adler32: str, meta: dict[str, Any],
                    verify: str | bool | None = None, overwrite: bool = False,
                    before_register: Callable[[], Any] | None = None,
                    ) -> storage_write.Target:
        """Upload a file the catalogue does not hold and register it with one request
        (`register_into`): bytes and metadata, the replica on `rse`, attached to `dataset`. No
        rule is added (the caller adds those it needs in its own requests).

        The bytes are written only where no file is yet (storage_write `exclusive`;
        StorageTargetExists otherwise) unless `overwrite` (the caller found that Rucio knows
        nothing of the file there). `before_register` runs once the bytes are written (the
        caller creates the dataset there, so a failed write leaves nothing in Rucio). A failed
        registration deletes the bytes again."""
        rucio = cast("RucioAdapter", self)  # the class this is mixed into
        tls = rucio.storage_tls() if verify is None else verify
        written = _write(rucio, path, did, rse, size, adler32, tls, exclusive=not overwrite)
        file = {**did.as_dict(), "bytes": size, "adler32": adler32, "meta": meta}
        try:
            if before_register is not None:
                before_register()
            rucio.register_into(dataset, rse, [file])
        except DataLakeError as exc:
            raise type(exc)(f"{exc}; {_undo(rucio, did, written, tls)}") from None
        return written

    def download(self, did: Did, rse: str, dest_dir: Path, *,
                 verify: str | bool | None = None, timeout: float = 60.0) -> Path:
        """Download one file from one RSE to dest_dir/<name>, size and adler32 verified, through
        the RSE's protocols in its order of preference: a `file` PFN is copied if the file is
        on this machine, an https one read with TLS verified (transfer_http; `verify` as for
        `upload`). Rucio's download client is not used: its WebDAV protocol verifies nothing."""
        rucio = cast("RucioAdapter", self)  # the class this is mixed into
        found = rucio.list_replicas([did], schemes=["file", "https", "davs"])
        pfns = sorted((int(i.get("priority") or 0), p) for r in found
                      for p, i in r.get("pfns", {}).items() if i.get("rse") == rse)
        if not pfns:
            raise NotFound(f"download of {did} from {rse}: no replica there")
        size, checksum = int(found[0]["bytes"]), found[0].get("adler32")
        dest = dest_dir / did.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            for _, pfn in pfns:
                local = Path(unquote(urlsplit(pfn).path))
                if pfn.startswith("file://") and local.is_file():
                    copy(local, dest, size=size, adler32=checksum)
                    return dest
                if pfn.startswith(("https://", "davs://")):
                    fetch(pfn.replace("davs://", "https://", 1), dest, size=size,
                          adler32=checksum, timeout=timeout,
                          verify=rucio.storage_tls() if verify is None else verify)
                    return dest
            raise TransferFailed(f"no replica readable here among {', '.join(p for _, p in pfns)}")
        except TransferFailed as exc:
            raise DataLakeError(f"download of {did} from {rse} failed: {exc}") from None


def _write(rucio: RucioAdapter, path: Path, did: Did, rse: str, size: int, adler32: str,
           tls: str | bool, *, exclusive: bool) -> storage_write.Target:
    """The bytes onto the first of `rse`'s write protocols that takes them."""
    try:
        return storage_write.write(path, rucio.write_targets(rse, did), size=size,
                                   adler32=adler32, verify=tls, exclusive=exclusive)
    except StorageWriteError as exc:
        raise type(exc)(f"upload of {path} as {did} to {rse} failed: {exc}") from None


def _undo(rucio: RucioAdapter, did: Did, written: storage_write.Target, tls: str | bool) -> str:
    """Delete the bytes of a failed registration, unless the replica is registered after all
    (a concurrent upload of the same file, an answer lost after the server acted): bytes
    without a replica are harmless, a replica without bytes is not."""
    try:
        if rucio.has_replica(did, written.rse):
            return f"{did} is registered on {written.rse} all the same: its bytes stay"
    except DataLakeError as exc:
        return (f"whether {did} is registered on {written.rse} is unknown ({exc}): the "
                f"bytes written to {written.pfn} stay")
    try:
        storage_write.remove(written, verify=tls)
    except DataLakeError as exc:
        return f"the bytes written to {written.pfn} could not be deleted again: {exc}"
    return f"the bytes written to {written.pfn} were deleted again"

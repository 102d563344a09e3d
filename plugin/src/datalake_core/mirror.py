"""A local copy of DataLake files standing in for the DataLake (`--storage-datalake-local-copy`).

`lofar-datalake compare` runs a workflow twice: once on the DataLake, once on a copy of its
inputs made beforehand (checksums verified). In the second run the provider answers from this
directory, `<root>/<scope>/<name>`, and writes outputs into it: the workflow and its DAG stay
the same while Rucio and FTS are not contacted at all. `index.json` in the root holds the size
and checksums of the copied files as the DataLake catalogue had them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .checksums import adler32_of_file
from .journal import InputEvent, Journal, OutputEvent, Staged, Way
from .materialise import TransferFailed, link
from .resolver import FileInfo, Replica
from .rucio_adapter import DataLakeError, Did
from .settings import LinkMode

INDEX = "index.json"
RSE = "LOCAL_COPY"


def load_index(root: Path) -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads((root / INDEX).read_text()))
    except FileNotFoundError:
        return {}


def save_index(root: Path, index: dict[str, dict[str, Any]]) -> None:
    part = root / (INDEX + ".part")
    part.write_text(json.dumps(index, indent=1, sort_keys=True))
    part.replace(root / INDEX)


class OfflineCopy:
    """Resolver, stager and output store in one, over a directory (duck-typed to the three)."""

    def __init__(self, root: Path, log: logging.Logger, journal: Journal | None,
                 link_mode: LinkMode = LinkMode.SYMLINK, workflow: str = "workflow") -> None:
        if not root.is_dir():
            raise DataLakeError(f"local copy {root} is not a directory")
        self.root = root
        self.log = log
        self.journal = journal
        self.link_mode = link_mode
        self.workflow = workflow
        self.index = load_index(root)
        self._known: dict[Did, FileInfo | None] = {}
        self._staged: dict[Did, Future[Staged]] = {}

    def path_of(self, did: Did) -> Path:
        return self.root / did.scope / did.name

    # -- resolver ------------------------------------------------------------------------------
    def register(self, did: Did) -> None:
        pass

    def register_template(self, query: str) -> None:
        pass

    def get(self, did: Did) -> FileInfo | None:
        # "Not there" is never cached: a job elsewhere (a grid worker) may write it any time.
        if self._known.get(did) is None:
            self._known[did] = self._info(did)
        return self._known[did]

    def refresh(self, dids: Any) -> None:
        for did in dids:
            self._known.pop(did, None)

    def known(self) -> dict[Did, FileInfo | None]:
        return dict(self._known)

    def _info(self, did: Did) -> FileInfo | None:
        path = self.path_of(did)
        if not path.is_file():
            return None
        entry = self.index.get(str(did), {})
        stat = path.stat()
        return FileInfo(did=did, bytes=int(entry.get("bytes", stat.st_size)),
                        adler32=entry.get("adler32"), md5=entry.get("md5"),
                        created_at=stat.st_mtime,
                        replicas=(Replica(RSE, "AVAILABLE", (path.as_uri(),)),))

    # -- stager --------------------------------------------------------------------------------
    def request(self, did: Did, dest: Path) -> Future[Staged]:
        """Make `did` local now; Snakemake's retrieval then asks `stage`, which answers from
        this result (as the Stager's batches do) instead of linking a second time."""
        if did in self._staged:
            return self._staged[did]
        future: Future[Staged] = Future()
        try:
            future.set_result(self._link(did, dest))
        except DataLakeError as exc:
            future.set_exception(exc)
        self._staged[did] = future
        return future

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def stage(self, did: Did, dest: Path) -> Staged:
        try:
            return self.request(did, dest).result()
        finally:
            self._staged.pop(did, None)

    def _link(self, did: Did, dest: Path) -> Staged:
        info = self.get(did)
        if info is None:
            raise DataLakeError(f"{did}: not in the local copy {self.root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        began = time.time()
        try:
            how = link(self.path_of(did), dest, mode=self.link_mode, size=info.bytes,
                       adler32=info.adler32, verify=True)
        except TransferFailed as exc:
            raise DataLakeError(f"{did}: the local copy is not usable: {exc}") from None
        staged = Staged(Way(how), "the local copy")
        if self.journal is not None:
            self.journal.record(InputEvent(
                did=str(did), bytes=info.bytes, adler32=info.adler32, md5=info.md5, how=staged,
                rse=RSE, pfn=str(self.path_of(did)), at_site=True, start=began))
        return staged

    # -- outputs -------------------------------------------------------------------------------
    def store(self, did: Did, path: Path, provenance: dict[str, str]) -> str:
        target = self.path_of(did)
        checksum = adler32_of_file(path)
        if target.exists() and adler32_of_file(target) != checksum:
            raise DataLakeError(f"{did} exists in the local copy {self.root} with other content")
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(path, part)
        part.replace(target)
        self._known.pop(did, None)
        if self.journal is not None:
            self.journal.record(OutputEvent(
                did=str(did), bytes=path.stat().st_size, adler32=checksum, rse=RSE,
                action="written to the local copy", rules=[], dataset=None))
        return "written to the local copy"

    def remove(self, did: Did) -> list[str]:
        self.path_of(did).unlink(missing_ok=True)
        self._known.pop(did, None)
        return [f"removed from the local copy {self.root}"]

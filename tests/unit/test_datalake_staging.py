"""Batching, replica fallback and error reporting of the stager (download policy, local files)."""

import logging
import threading
import zlib

import pytest

from datalake_core.journal import Staged, Way
from datalake_core.resolver import FileInfo, Replica
from datalake_core.rucio_adapter import Did
from datalake_core.settings import ProviderConfig
from datalake_core.staging import Stager, StagingError

log = logging.getLogger("test")


class StubResolver:
    def __init__(self, infos):
        self.infos = {i.did: i for i in infos}
        self.asked = []

    def get(self, did):
        self.asked.append(did)
        return self.infos.get(did)

    def refresh(self, dids):
        pass


def _file(tmp_path, rse: str, name: str, data: bytes):
    path = tmp_path / "rse" / rse / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"file://{path}"


def _info(name: str, data: bytes, replicas):
    return FileInfo(Did("lofar", name), len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
                    None, 0.0, tuple(replicas))


def _stager(infos, **cfg):
    resolver = StubResolver(infos)
    config = ProviderConfig(site_rse="SITE", **cfg)
    return Stager(config, resolver, lambda: pytest.fail("no Rucio needed"), log), resolver


def test_corrupt_site_replica_falls_back_to_another_rse(tmp_path, caplog):
    data = b"good bytes" * 100
    site_pfn = _file(tmp_path, "SITE", "f", b"X" * len(data))
    other_pfn = _file(tmp_path, "OTHER", "f", data)
    info = _info("f", data, [Replica("SITE", "AVAILABLE", (site_pfn,)),
                             Replica("OTHER", "AVAILABLE", (other_pfn,))])
    stager, _ = _stager([info])
    dest = tmp_path / "local" / "f"
    with caplog.at_level(logging.WARNING):
        how = stager.stage(info.did, dest)
    assert how == Staged(Way.COPY, "OTHER") and str(how) == "copy from OTHER"
    assert dest.read_bytes() == data and not dest.is_symlink()
    assert "adler32 mismatch" in caplog.text


def test_no_usable_replica_names_did_rses_and_reasons(tmp_path):
    data = b"abc" * 10
    a = _file(tmp_path, "A", "g", b"zzz" * 10)
    info = _info("g", data, [Replica("A", "AVAILABLE", (a,)),
                             Replica("B", "AVAILABLE", ("root://b.example/g",))])
    stager, _ = _stager([info])
    with pytest.raises(StagingError) as err:
        stager.stage(info.did, tmp_path / "local" / "g")
    text = str(err.value)
    assert "lofar:g" in text and "A, B" in text and "adler32 mismatch" in text
    assert not (tmp_path / "local" / "g").exists()


def test_unknown_did_is_a_clear_error(tmp_path):
    stager, _ = _stager([])
    with pytest.raises(StagingError, match="lofar:nope: not in the DataLake"):
        stager.stage(Did("lofar", "nope"), tmp_path / "x")


def test_requests_queued_together_are_one_batch_processed_concurrently(tmp_path, monkeypatch):
    infos = []
    for i in range(6):
        data = f"file {i}".encode() * 50
        infos.append(_info(f"d/{i}", data, [Replica("R", "AVAILABLE",
                                                    (_file(tmp_path, "R", f"d/{i}", data),))]))
    stager, _ = _stager(infos, max_concurrent_transfers=3)
    threads = set()
    real_read = stager._read
    # The first read waits for a second one to start: passes only if reads overlap, however
    # busy the machine is.
    overlap = threading.Barrier(2, timeout=30)
    calls = []
    lock = threading.Lock()

    def read(*args):
        threads.add(threading.current_thread().name)
        with lock:
            first_two = len(calls) < 2
            calls.append(1)
        if first_two:
            overlap.wait()
        return real_read(*args)

    monkeypatch.setattr(stager, "_read", read)
    batches = []
    real_process = stager._process
    monkeypatch.setattr(stager, "_process", lambda b: (batches.append(len(b)), real_process(b)))
    futures = [stager.request(i.did, tmp_path / "local" / i.did.name) for i in infos]
    stager.flush()
    assert batches == [6]
    assert all(f.done() and f.exception() is None for f in futures)
    assert 1 < len(threads) <= 3
    # Each caller then picks up its own result without new work.
    assert stager.stage(infos[0].did, tmp_path / "local" / "d/0").way is Way.COPY
    assert batches == [6]


def test_verified_local_copy_is_not_fetched_again(tmp_path):
    data = b"once" * 100
    info = _info("h", data, [Replica("R", "AVAILABLE", (_file(tmp_path, "R", "h", data),))])
    dest = tmp_path / "local" / "h"
    dest.parent.mkdir()
    dest.write_bytes(data)
    stager, _ = _stager([info])
    staged = stager.stage(info.did, dest)
    assert staged.way is Way.PRESENT and not staged.moved
    assert str(staged) == "already present and verified"

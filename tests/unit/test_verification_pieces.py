"""Pure logic behind `compare` and provenance: the journal, the local-copy backend, the kernel
copy, settings gathered from a profile, byte accounting, and manifests (embedding, scrubbing,
restoring)."""

import json
import logging
import os
import zlib
from pathlib import Path

import pytest

from datalake_core import materialise
from datalake_core.journal import (
    Event,
    InputEvent,
    Journal,
    OutputEvent,
    SiteTransferEvent,
    Staged,
    Way,
    read_events,
    read_journal,
)
from datalake_core.mirror import OfflineCopy, save_index
from datalake_core.rucio_adapter import DataLakeError, Did
from datalake_core.settings import LinkMode
from lofar_datalake.compare.accounting import moved_bytes
from lofar_datalake.compare.make_mirror import provider_settings
from lofar_datalake.provenance import manifest
from lofar_datalake.provenance.reproduce import ManifestError, restore_embedded

log = logging.getLogger("test")


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_journal_is_private_and_read_back_in_time_order(tmp_path):
    journal = Journal("run1", tmp_path / ".snakemake" / "datalake")
    journal.record(InputEvent(did="lofar:a", bytes=3, how=Staged(Way.HTTPS, "SITE_C")))
    journal.record(OutputEvent(did="lofar:b"))
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    with open(journal.path, "a") as handle:
        handle.write('{"event": "input", "ti')  # a line cut by a killed process
    events = read_events(tmp_path)
    assert [e["event"] for e in events] == ["input", "output"]
    assert read_events(tmp_path, since=events[1]["time"])[0]["did"] == "lofar:b"
    assert events[0]["how"] == "https from SITE_C" and events[0]["run"] == "run1"
    typed = read_journal(tmp_path)
    assert [type(e) for e in typed] == [InputEvent, OutputEvent]
    assert typed[0].how == Staged(Way.HTTPS, "SITE_C") and typed[0].began == typed[0].time
    assert [e.to_json() for e in typed] == events  # the lines as written, key for key


def test_journal_lines_keep_their_keys():
    rule = SiteTransferEvent(policy="rule", destination="SITE_A", rules=["r1"], time=2.0, run="r")
    assert list(rule.to_json()) == ["event", "time", "run", "policy", "destination", "start",
                                    "files", "bytes", "failed", "rules"]
    line = {"event": "input", "time": 1.0, "run": "r", "did": "lofar:a", "bytes": 3,
            "adler32": None, "md5": None, "how": "already present and verified", "rse": None,
            "pfn": None, "at_site": True, "start": 1.0}
    event = Event.from_json(line)
    assert isinstance(event, InputEvent) and not event.how.moved
    assert event.to_json() == line and list(event.to_json()) == list(line)
    assert Event.from_json({"event": "from_a_newer_version", "time": 1.0}) is None


def _local_copy(tmp_path, data: bytes, adler32: str | None = None) -> Path:
    root = tmp_path / "copy"
    (root / "lofar" / "obs").mkdir(parents=True)
    (root / "lofar" / "obs" / "a.tar").write_bytes(data)
    save_index(root, {"lofar:obs/a.tar": {"bytes": len(data), "adler32": adler32 or _adler(data),
                                          "md5": None}})
    return root


def test_local_copy_serves_inputs_once_and_keeps_outputs(tmp_path):
    data = b"visibilities" * 100
    journal = Journal("r", tmp_path / "j")
    copy = OfflineCopy(_local_copy(tmp_path, data), log, journal, link_mode=LinkMode.COPY)
    did = Did("lofar", "obs/a.tar")
    assert copy.get(did).exists and copy.get(Did("lofar", "missing")) is None
    dest = tmp_path / "work" / "a.tar"
    future = copy.request(did, dest)
    assert copy.stage(did, dest) == future.result() == Staged(Way.COPY, "the local copy")
    assert str(future.result()) == "copy from the local copy"
    assert dest.read_bytes() == data
    # Snakemake asks twice (request, then retrieve): the file is linked and journalled once.
    assert sum(1 for line in journal.path.read_text().splitlines() if '"input"' in line) == 1
    product = tmp_path / "image.fits"
    product.write_bytes(b"pixels")
    copy.store(Did("lofar", "products/image.fits"), product, {})
    assert (copy.root / "lofar" / "products" / "image.fits").read_bytes() == b"pixels"
    product.write_bytes(b"other pixels")
    with pytest.raises(DataLakeError, match="other content"):
        copy.store(Did("lofar", "products/image.fits"), product, {})


def test_local_copy_that_fails_its_checksum_is_refused(tmp_path):
    copy = OfflineCopy(_local_copy(tmp_path, b"abc", adler32="00000001"), log, None)
    with pytest.raises(DataLakeError, match="not usable: adler32 mismatch"):
        copy.stage(Did("lofar", "obs/a.tar"), tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()


def test_kernel_copy_is_verified_and_a_bad_copy_never_appears(tmp_path):
    data = os.urandom(3 << 20) + b"end"
    source = tmp_path / "replica"
    source.write_bytes(data)
    dest = tmp_path / "out" / "file"
    dest.parent.mkdir()
    materialise.copy(source, dest, size=len(data), adler32=_adler(data))
    assert dest.read_bytes() == data and not materialise.part_name(dest).exists()
    with pytest.raises(materialise.CorruptReplica):
        materialise.copy(source, tmp_path / "out" / "bad", size=len(data), adler32="00000001")
    assert not (tmp_path / "out" / "bad").exists()
    assert not materialise.part_name(tmp_path / "out" / "bad").exists()


def test_link_without_checksum_still_checks_the_size(tmp_path):
    source = tmp_path / "replica"
    source.write_bytes(b"12345")
    with pytest.raises(materialise.CorruptReplica, match="size mismatch"):
        materialise.link(source, tmp_path / "l", mode=LinkMode.SYMLINK, size=4, adler32=None,
                       verify=False)
    # Same size, wrong checksum: only found when verifying.
    assert materialise.link(source, tmp_path / "l", mode=LinkMode.SYMLINK, size=5,
                          adler32="00000001", verify=False) == "symlink"
    with pytest.raises(materialise.CorruptReplica, match="adler32"):
        materialise.link(source, tmp_path / "m", mode=LinkMode.SYMLINK, size=5,
                       adler32="00000001", verify=True)


def test_provider_settings_from_profile_then_arguments_then_environment(tmp_path, monkeypatch):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        "cores: 2\nstorage-datalake-site-rse: SITE_A\nstorage-datalake-stage-policy: rule\n")
    monkeypatch.setenv("SNAKEMAKE_STORAGE_DATALAKE_PASSWORD", "pw")
    raw = provider_settings(profile, ["--cores", "1", "--storage-datalake-stage-policy", "fts",
                                      "--storage-datalake-no-stage-ahead"])
    assert raw == {"site_rse": "SITE_A", "stage_policy": "fts", "no_stage_ahead": True,
                   "password": "pw"}


class FakeRucio:
    """Rucio's request history for two staged files (pure bookkeeping, no server)."""

    def transfer_record(self, did, rse):
        return {"state": "DONE", "bytes": 100, "external_id": f"job-{did.name}"}


def test_bytes_moved_come_from_the_transfer_records():
    transfers = [SiteTransferEvent(policy="rule", destination="SITE_A", rules=["r1"],
                                   files=["lofar:a", "lofar:b"]),
                 SiteTransferEvent(policy="fts", destination="SITE_A", fts_jobs=["j9"], bytes=7)]
    events = [InputEvent(did="lofar:a", how=Staged(Way.SYMLINK, "SITE_A"), rse="SITE_A",
                         bytes=100),
              InputEvent(did="lofar:c", how=Staged(Way.HTTPS, "SITE_C"), rse="SITE_C", bytes=5)]
    moved = moved_bytes(events, transfers, FakeRucio)
    assert moved["by_rule"] == 200 and moved["by_fts"] == 7 and moved["direct"] == 5
    assert moved["bytes"] == 212 and moved["fts_jobs"] == 3 and moved["rucio_rules"] == 1
    assert "Rucio request history (2/2" in moved["bytes_source"]


class HistoryHiddenRucio:
    """Rucio as a researcher's account sees it: no request history, the catalogue's sizes."""

    def transfer_record(self, did, rse):
        return None

    def get_metadata(self, did):
        return {"bytes": 120}


def test_bytes_staged_by_rules_whose_history_is_hidden_come_from_the_catalogue():
    transfers = [SiteTransferEvent(policy="rule", destination="SITE_A", rules=["r1"],
                                   files=["lofar:a", "lofar:b"])]
    moved = moved_bytes([], transfers, HistoryHiddenRucio)
    assert moved["by_rule"] == 240 and moved["bytes"] == 240
    assert "Rucio request history (0/2" in moved["bytes_source"]
    assert "catalogue sizes of 2 files staged by rules" in moved["bytes_source"]


def test_manifest_scrubs_secret_keys_and_restores_embedded_files(tmp_path):
    work = tmp_path / "work"
    (work / "truth").mkdir(parents=True)
    (work / "truth" / "gains.npz").write_bytes(b"\x00\x01binary")
    (work / "sheet.tsv").write_text("observation\trole\n")
    config = {"observations": "sheet.tsv", "truth": "truth", "input_mode": "datalake",
              "datalake": {"scope": "lofar", "products": "p", "password": "hunter2"}}
    data = manifest.build(config=config, workdir=work, input_dids=[], local_inputs=[],
                          products=[], product_did={}, containers={}, container_deployment=False,
                          storage={}, executor="local", started=None, tools={})
    text = json.dumps(data)
    assert "hunter2" not in text and data["config"]["datalake"]["password"] == "<removed>"
    restored = restore_embedded(data, tmp_path / "inputs")
    assert Path(restored["truth"], "gains.npz").read_bytes() == b"\x00\x01binary"
    assert Path(restored["observations"]).read_text() == "observation\trole\n"
    entry = data["embedded"]["truth"]["files"]["gains.npz"]
    entry["sha256"] = "0" * 64
    with pytest.raises(ManifestError, match="sha256"):
        restore_embedded(data, tmp_path / "again")

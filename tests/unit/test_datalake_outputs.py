import logging
import zlib

import pytest

from datalake_core.errors import StorageTargetExists, StorageWriteError
from datalake_core.outputs import Outputs
from datalake_core.resolver import Resolver
from datalake_core.rucio_adapter import DataLakeError, Did, DuplicateRuleError
from datalake_core.settings import OutputRule, ProviderConfig
from datalake_core.storage_write import Target


class FakeRucio:
    account = "lofar"

    def __init__(self):
        self.fail_upload = False
        self.on_storage: set[Did] = set()
        self.dids: dict[Did, dict] = {}
        self.rules: dict[str, tuple[Did, str]] = {}
        self.datasets: dict[Did, set[Did]] = {}
        self.meta: dict[Did, dict] = {}

    def get_metadata(self, did):
        return self.dids.get(did)

    def upload_into(self, path, did, rse, dataset, *, size, adler32, meta, verify=None,
                    overwrite=False, before_register=None):
        if self.fail_upload:
            raise StorageWriteError("refused")
        if did in self.on_storage and not overwrite:
            raise StorageTargetExists("there")
        data = path.read_bytes()
        assert (size, adler32) == (len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
        if before_register is not None:
            before_register()
        self.dids[did] = {"adler32": adler32, "bytes": size}
        self.meta[did] = dict(meta)
        self.datasets[dataset].add(did)

    def add_rule(self, dids, expression, copies=1, lifetime=None):
        for rid, (d, e) in self.rules.items():
            if d == dids[0] and e == expression:
                raise DuplicateRuleError(rid)
        rid = f"rule{len(self.rules)}"
        self.rules[rid] = (dids[0], expression)
        return rid

    def write_targets(self, rse, did):
        return [Target(rse, "file", f"file:///{rse}/{did.name}", "/")]

    def delete_rule(self, rid):
        del self.rules[rid]

    def ensure_dataset(self, ds):
        if ds in self.datasets:
            return False
        self.datasets[ds] = set()
        return True

    def attach(self, ds, dids):
        if dids[0] in self.datasets[ds]:
            return False
        self.datasets[ds].update(dids)
        return True

    def detach(self, ds, dids):
        self.datasets[ds].difference_update(dids)

    def set_metadata(self, did, meta):
        self.meta.setdefault(did, {}).update(meta)


def _outputs(fake, resolver=None, **cfg):
    config = ProviderConfig(output_rse="SITE_B_DISK", output_dataset="runs/{workflow}-{run}",
                            output_rules=(OutputRule(1, "SITE_C_DAV", 3600),),
                            output_metadata=(("project", "LOFAR"),), **cfg)
    return Outputs(config, lambda: fake, logging.getLogger("t"), run_id="R1", workflow="wf",
                   resolver=resolver)


class SawMissing(Resolver):
    """A resolver that has seen the given DIDs missing; asks nothing."""

    def __init__(self, *dids):
        super().__init__(lambda: None)
        self._known.update(dict.fromkeys(dids))


def test_store_uploads_attaches_adds_rules_and_metadata(tmp_path):
    fake = FakeRucio()
    out = _outputs(fake)
    path = tmp_path / "img.fits"
    path.write_bytes(b"image")
    did = Did("lofar", "out/img.fits")
    assert out.store(did, path, {"snakemake_rule": "image"}).startswith("uploaded to SITE_B_DISK")
    assert fake.datasets == {Did("lofar", "runs/wf-R1"): {did}}
    assert sorted(e for _, e in fake.rules.values()) == ["SITE_B_DISK", "SITE_C_DAV"]
    assert fake.meta[did] == {"snakemake_rule": "image", "project": "LOFAR"}


def test_same_checksum_is_not_uploaded_again_different_one_fails(tmp_path):
    fake = FakeRucio()
    path = tmp_path / "f"
    path.write_bytes(b"v1")
    did = Did("lofar", "f")
    _outputs(fake).store(did, path, {})
    assert "not uploaded again" in _outputs(fake).store(did, path, {})
    path.write_bytes(b"v2")
    with pytest.raises(DataLakeError, match="immutable") as err:
        _outputs(fake).store(did, path, {})
    assert "lofar:f" in str(err.value)


def test_remove_undoes_only_what_this_run_did(tmp_path):
    fake = FakeRucio()
    path = tmp_path / "f"
    path.write_bytes(b"data")
    theirs = Did("lofar", "theirs")
    fake.dids[theirs] = {"adler32": "x"}
    their_rule = fake.add_rule([theirs], "SITE_A_DISK")
    mine = Did("lofar", "mine")
    out = _outputs(fake)
    out.store(mine, path, {})
    assert out.remove(theirs) == []
    undone = out.remove(mine)
    assert len(undone) == 3  # detached + upload rule + replication rule
    assert list(fake.rules) == [their_rule]
    assert all(not members for members in fake.datasets.values())


def test_missing_output_rse_is_a_clear_error(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    out = Outputs(ProviderConfig(), lambda: FakeRucio(), logging.getLogger("t"), run_id="R")
    with pytest.raises(DataLakeError, match="output-rse"):
        out.store(Did("lofar", "f"), path, {})


def test_an_output_this_run_saw_missing_is_uploaded_without_asking_and_answered_at_once(
        tmp_path, monkeypatch):
    fake = FakeRucio()
    asked = []
    monkeypatch.setattr(fake, "get_metadata", lambda did: asked.append(did))
    did = Did("lofar", "out/img.fits")
    resolver = SawMissing(did)
    path = tmp_path / "img.fits"
    path.write_bytes(b"image")
    _outputs(fake, resolver).store(did, path, {"snakemake_rule": "image"})
    assert asked == []
    info = resolver.get(did)  # Snakemake's questions after the store: no request
    assert info.exists and info.bytes == 5 and info.adler32 == fake.dids[did]["adler32"]
    assert [r.pfns for r in info.replicas] == [("file:///SITE_B_DISK/out/img.fits",)]
    assert fake.meta[did] == {"snakemake_rule": "image", "project": "LOFAR"}


def test_a_file_found_at_the_place_is_compared_and_unknown_bytes_are_replaced(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"v1")
    did = Did("lofar", "f")
    fake = FakeRucio()
    fake.on_storage.add(did)  # bytes of a failed earlier upload: Rucio knows nothing of them
    assert _outputs(fake, SawMissing(did)).store(did, path, {}).startswith("uploaded")
    path.write_bytes(b"v2")  # someone registered v1 after this run looked
    with pytest.raises(DataLakeError, match="immutable"):
        _outputs(fake, SawMissing(did)).store(did, path, {})


def test_a_failed_upload_registers_nothing_not_even_the_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = FakeRucio()
    fake.fail_upload = True
    path = tmp_path / "f"
    path.write_bytes(b"data")
    did = Did("lofar", "f")
    with pytest.raises(DataLakeError, match="not stored: refused"):
        _outputs(fake).store(did, path, {})
    assert fake.dids == {} and fake.datasets == {} and fake.rules == {}
    assert (tmp_path / ".snakemake/datalake/unstored/lofar/f").read_bytes() == b"data"

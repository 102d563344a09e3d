import datetime as dt

from datalake_core.resolver import Resolver, Template
from datalake_core.rucio_adapter import Did

CREATED = dt.datetime(2024, 5, 1, 12, 0, 0)  # naive, as the server sends it (UTC)


class FakeRucio:
    """Answers like Rucio's bulk calls and records each call."""

    def __init__(self, files: dict[str, dict]) -> None:
        self.files = files
        self.calls: list[tuple[str, int]] = []
        self.client = self

    def list_dids(self, scope, filters, did_type="file"):
        self.calls.append(("list_dids", 0))
        prefix = filters["name"].split("*")[0]
        return [n for n in self.files if n.startswith(prefix)]

    def list_replicas(self, dids, schemes=None):
        self.calls.append(("list_replicas", len(dids)))
        out = []
        for d in dids:
            f = self.files.get(d.name)
            if f is None:
                continue
            pfns = {f"file:///rse/{rse}/{d.name}": {"rse": rse, "priority": 1}
                    for rse in f["rses"]}
            out.append({"scope": d.scope, "name": d.name, "pfns": pfns,
                        "states": dict.fromkeys(f["rses"], f.get("state", "AVAILABLE"))})
        return out

    def get_metadata_bulk(self, dids):
        self.calls.append(("get_metadata_bulk", len(dids)))
        return [{"scope": d.scope, "name": d.name, "bytes": 10, "adler32": "0000000a",
                 "md5": None, "created_at": CREATED, "did_type": "FILE"}
                for d in dids if d.name in self.files]


def _resolver(files, **kwargs):
    fake = FakeRucio(files)
    return Resolver(lambda: fake, **kwargs), fake


def test_first_question_resolves_everything_registered_in_one_pass():
    files = {f"obs/SB{i:03d}.dat": {"rses": ["SITE_A_DISK"]} for i in range(50)}
    resolver, fake = _resolver(files)
    for name in files:
        resolver.register(Did("lofar", name))
    resolver.register(Did("lofar", "obs/missing.dat"))
    info = resolver.get(Did("lofar", "obs/SB007.dat"))
    assert info is not None and info.exists and info.bytes == 10
    assert info.created_at == CREATED.replace(tzinfo=dt.UTC).timestamp()
    assert resolver.get(Did("lofar", "obs/missing.dat")) is None
    for name in files:
        resolver.get(Did("lofar", name))
    assert fake.calls == [("list_replicas", 51), ("get_metadata_bulk", 51)]


def test_template_lists_its_matches_once_so_later_dids_need_no_requests():
    files = {f"obs/L1/SB{i:03d}.dat": {"rses": ["SITE_B_DISK"]} for i in range(30)}
    files["obs/L1/other.txt"] = {"rses": ["SITE_B_DISK"]}
    resolver, fake = _resolver(files)
    resolver.register_template("datalake://lofar/obs/L1/SB{sb}.dat")
    for i in range(30):  # as Snakemake does it depth-first: one DID at a time
        did = Did("lofar", f"obs/L1/SB{i:03d}.dat")
        resolver.register(did)
        assert resolver.get(did) is not None
    assert [c[0] for c in fake.calls] == ["list_dids", "list_replicas", "get_metadata_bulk"]
    assert fake.calls[1] == ("list_replicas", 30), "other.txt does not match the template"


def test_prefetch_limit_caps_template_listing():
    files = {f"x/f{i}": {"rses": ["A"]} for i in range(20)}
    resolver, fake = _resolver(files, prefetch_limit=5)
    resolver.register_template("datalake://lofar/x/{name}")
    resolver.get(Did("lofar", "x/f0"))
    assert fake.calls[1][1] <= 6


def test_unavailable_replicas_do_not_count_as_existing():
    resolver, _ = _resolver({"a": {"rses": ["A"], "state": "COPYING"}})
    info = resolver.get(Did("lofar", "a"))
    assert info is not None and not info.exists


def test_template_regex_honours_constraints_and_literals():
    t = Template.from_query(r"datalake://lofar/L1/SB{sb,\d{3}}_{kind}.MS")
    assert t is not None and t.glob == "L1/SB*_*.MS"
    assert t.matches(Did("lofar", "L1/SB001_uv.MS"))
    assert not t.matches(Did("lofar", "L1/SBabc_uv.MS"))
    assert not t.matches(Did("other", "L1/SB001_uv.MS"))
    assert Template.from_query("datalake://{scope}/x") is None


def test_template_starting_with_a_wildcard_is_not_listed():
    resolver, fake = _resolver({"a/b": {"rses": ["A"]}})
    resolver.register_template("datalake://lofar/{obs}/b")
    resolver.get(Did("lofar", "a/b"))
    assert [c[0] for c in fake.calls] == ["list_replicas", "get_metadata_bulk"]

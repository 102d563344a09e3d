import pytest

from datalake_core.query import QueryError, parse, to_query, validation_error
from datalake_core.rucio_adapter import Did
from snakemake_storage_plugin_datalake import StorageProvider


@pytest.mark.parametrize("query", [
    "datalake://lofar/L123/L123_SB000_uv.MS.tar",
    "datalake://lofar/a",
    "datalake://user.jdoe/x-y_z.1/2/3",
    "datalake://lofar/L123/SB{sb}.MS",
    r"datalake://lofar/L123/SB{sb,\d{3}}.MS",
    "datalake://{scope}/file",
])
def test_valid_queries(query):
    assert validation_error(query) is None
    assert StorageProvider.is_valid_query(query)


@pytest.mark.parametrize(("query", "reason"), [
    ("s3://bucket/key", "must start with datalake://"),
    ("datalake:///name", "scope is empty"),
    ("datalake://lofar", "name is empty"),
    ("datalake://lofar/", "name is empty"),
    ("datalake://lofar//abs", "absolute"),
    ("datalake://lofar/a/../b", "'..' path segment"),
    ("datalake://lofar/a/./b", "'.' path segment"),
    ("datalake://lofar/a//b", "empty path segment"),
    ("datalake://lofar/a/", "empty path segment"),
    ("datalake://lofar/a b", "contains ' '"),
    ("datalake://lofar/a:b", "contains ':'"),
    ("datalake://lo far/a", "scope"),
    ("datalake://" + "s" * 26 + "/a", "longer than 25"),
    ("datalake://lofar/" + "n" * 251, "longer than 250"),
])
def test_invalid_queries_say_why(query, reason):
    assert reason in (validation_error(query) or "")
    result = StorageProvider.is_valid_query(query)
    assert not result and reason in str(result)


def test_parse_keeps_slashes_in_names_and_round_trips():
    did = parse("datalake://lofar/L1/sub/SB000.MS")
    assert did == Did("lofar", "L1/sub/SB000.MS")
    assert to_query(did) == "datalake://lofar/L1/sub/SB000.MS"


def test_parse_rejects_wildcards_and_invalid():
    with pytest.raises(QueryError, match="wildcards"):
        parse("datalake://lofar/{x}")
    with pytest.raises(QueryError, match=r"'\.\.'"):
        parse("datalake://lofar/../etc/passwd")

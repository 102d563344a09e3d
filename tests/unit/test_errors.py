"""Rucio's exceptions become the core's errors in the adapter, the core's errors become
Snakemake's WorkflowError in the provider; messages name what was being done."""

import pytest
from rucio.common import exception as rucio
from snakemake_interface_common.exceptions import WorkflowError

from datalake_core.errors import (
    AlreadyExists,
    DataLakeError,
    DuplicateRuleError,
    NotFound,
    QueryError,
    RucioUnavailable,
    SettingsError,
)
from datalake_core.rucio_adapter import Did, RucioAdapter, rucio_errors
from snakemake_storage_plugin_datalake.provider import workflow_errors

DID = Did("lofar", "L1/SB000.dat")


class RaisingClient:
    """A Rucio client whose every call raises the given exception."""

    account = "alice"
    host = "https://rucio.example"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise self.exc
        return call


def adapter(exc: Exception) -> RucioAdapter:
    return RucioAdapter(RaisingClient(exc))


@pytest.mark.parametrize(("exc", "kind"), [
    (rucio.DuplicateRule("dup"), DuplicateRuleError),
    (rucio.DataIdentifierNotFound("gone"), NotFound),
    (rucio.RuleNotFound("gone"), NotFound),
    (rucio.DataIdentifierAlreadyExists("there"), AlreadyExists),
    (rucio.FileAlreadyExists("there"), AlreadyExists),
    (rucio.RSENotFound("no rse"), DataLakeError),
])
def test_rucio_exceptions_become_core_errors(exc, kind):
    with pytest.raises(kind) as err, rucio_errors("doing it"):
        raise exc
    assert type(err.value) is kind
    assert err.value.__cause__ is exc


def test_other_exceptions_pass_unchanged():
    with pytest.raises(RucioUnavailable), rucio_errors("doing it"):
        raise RucioUnavailable("server gone")
    with pytest.raises(KeyError), rucio_errors("doing it"):
        raise KeyError("x")


def test_messages_name_the_operation():
    with pytest.raises(DataLakeError, match=r"(?s)^rule to SITE_A failed: .*denied"):
        adapter(rucio.AccessDenied("denied")).add_rule([DID], "SITE_A")
    with pytest.raises(DuplicateRuleError, match=r"^rule to SITE_A exists already: "):
        adapter(rucio.DuplicateRule("dup")).add_rule([DID], "SITE_A")
    with pytest.raises(DataLakeError, match=r"(?s)^RSE expression 'tier=x': .*bad"):
        adapter(rucio.InvalidRSEExpression("bad")).expand_rse_expression("tier=x")
    with pytest.raises(DataLakeError, match=r"^registering 1 replicas on SITE_A failed: "):
        adapter(rucio.RucioException("no")).add_replicas("SITE_A", [DID.as_dict()])
    with pytest.raises(DataLakeError, match=rf"^setting metadata \['k'\] on {DID} failed: "):
        adapter(rucio.RucioException("no")).set_metadata(DID, {"k": "v"})


def test_answers_that_are_not_failures():
    assert adapter(rucio.DataIdentifierNotFound("gone")).get_metadata(DID) is None
    assert adapter(rucio.DataIdentifierAlreadyExists("x")).ensure_dataset(DID) is False
    assert adapter(rucio.FileAlreadyExists("x")).attach(DID, [DID]) is False
    adapter(rucio.RuleNotFound("gone")).delete_rule("r1")
    assert adapter(rucio.RequestNotFound("none")).transfer_record(DID, "SITE_A") is None


def test_transfer_record_does_not_hide_an_outage():
    client = RaisingClient(rucio.ServerConnectionException("refused"))
    with pytest.raises(RucioUnavailable):
        RucioAdapter(client).transfer_record(DID, "SITE_A")


@pytest.mark.parametrize(("exc", "message"), [
    (DataLakeError("lofar:x not stored"), "lofar:x not stored"),
    (QueryError("datalake://x: no name"), "datalake://x: no name"),
    (SettingsError("rucio_timeout", "must be at least 1"),
     "datalake storage plugin: --storage-datalake-rucio-timeout: must be at least 1"),
])
def test_the_provider_reports_core_errors_as_workflow_errors(exc, message):
    with pytest.raises(WorkflowError) as err, workflow_errors():
        raise exc
    assert str(err.value) == message
    assert err.value.__cause__ is None


def test_workflow_errors_as_decorator_with_a_prefix():
    @workflow_errors("datalake storage plugin: ")
    def fails():
        raise DataLakeError("local copy /x is not a directory")

    with pytest.raises(WorkflowError, match=r"^datalake storage plugin: local copy /x is not a"):
        fails()

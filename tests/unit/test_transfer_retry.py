"""datalake_core.transfer_retry: which failures a replica read tries again, and what the caller
reads when every attempt failed."""

from __future__ import annotations

import pytest

from datalake_core import transfer_retry
from datalake_core.errors import CorruptReplica, TransferFailed, TransientFailure


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer_retry, "BACKOFF", 0.0)


def _reads(*outcomes: Exception | None):
    """A read that fails with each outcome in turn (None: it works); records its calls."""
    calls: list[int] = []

    def read() -> None:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome
    return read, calls


def test_a_reset_connection_is_tried_again_and_the_read_succeeds():
    read, calls = _reads(TransientFailure("reset by peer"), None)
    transfer_retry.retrying(read)
    assert len(calls) == 2


def test_a_lasting_failure_is_not_tried_again():
    refused = TransferFailed("HTTP 403 Forbidden")
    read, calls = _reads(refused)
    with pytest.raises(TransferFailed) as failure:
        transfer_retry.retrying(read)
    assert failure.value is refused and len(calls) == 1


def test_the_same_transient_failure_every_time_is_reported_once():
    read, calls = _reads(*[TransientFailure("Socket timeout")] * transfer_retry.ATTEMPTS)
    with pytest.raises(TransientFailure) as failure:
        transfer_retry.retrying(read)
    assert str(failure.value) == "Socket timeout"
    assert len(calls) == transfer_retry.ATTEMPTS


def test_a_retry_that_fails_otherwise_keeps_how_far_the_first_read_got():
    # The server died mid-read (reset), so the retry cannot even connect: the caller must
    # still learn that the first read stopped after 8 MiB.
    read, calls = _reads(TransientFailure("failed after 8388608 of 268435456 bytes: reset"),
                         TransferFailed("failed: [FATAL] Connection error"))
    with pytest.raises(TransferFailed) as failure:
        transfer_retry.retrying(read)
    assert type(failure.value) is TransferFailed
    assert str(failure.value) == ("failed: [FATAL] Connection error (attempt 2; the first "
                                  "failed: failed after 8388608 of 268435456 bytes: reset)")
    assert len(calls) == 2


def test_a_corrupt_replica_after_a_retry_stays_a_corrupt_replica():
    read, _ = _reads(TransientFailure("timed out"), CorruptReplica("adler32 mismatch"))
    with pytest.raises(CorruptReplica, match=r"adler32 mismatch \(attempt 2; the first failed: "
                                             r"timed out\)"):
        transfer_retry.retrying(read)

"""The recall window (files per request, files and bytes in flight) and the time-left estimate."""

from __future__ import annotations

from datalake_core.recall_window import RecallWindow, estimate, next_requests
from datalake_core.settings import ProviderConfig

LTA = RecallWindow(files_per_request=1000, files_in_flight=5000, bytes_in_flight=5 * 10**12)


def test_the_defaults_are_the_lofar_ltas_limits() -> None:
    cfg = ProviderConfig()
    assert (cfg.recall_files_per_request, cfg.recall_files_in_flight,
            cfg.recall_bytes_in_flight) == (1000, 5000, 5 * 10**12)
    assert 3600 <= cfg.recall_lifetime <= 7 * 24 * 3600


def test_requests_hold_at_most_files_per_request_in_queue_order() -> None:
    queue = [(n, 1) for n in range(2500)]
    requests = next_requests(queue, LTA, 0, 0)
    assert [len(r) for r in requests] == [1000, 1000, 500]
    assert [k for r in requests for k in r] == list(range(2500))


def test_files_in_flight_are_never_more_than_the_window() -> None:
    queue = [(n, 1) for n in range(6000)]
    assert sum(len(r) for r in next_requests(queue, LTA, 0, 0)) == 5000
    assert sum(len(r) for r in next_requests(queue, LTA, 4990, 4990)) == 10
    assert next_requests(queue, LTA, 5000, 5000) == []


def test_bytes_in_flight_are_never_more_than_the_window() -> None:
    tb = 10**12
    queue = [("a", 2 * tb), ("b", 2 * tb), ("c", 2 * tb), ("d", 1)]
    assert next_requests(queue, LTA, 0, 0) == [["a", "b"]]
    # Order is kept: the small file "d" does not overtake "c", which waits for room.
    assert next_requests(queue[2:], LTA, 2, 4 * tb) == []
    assert next_requests(queue[2:], LTA, 1, 2 * tb) == [["c", "d"]]


def test_a_file_larger_than_the_byte_window_goes_alone_when_nothing_is_in_flight() -> None:
    window = RecallWindow(10, 10, 100)
    assert next_requests([("huge", 500), ("small", 1)], window, 0, 0) == [["huge"]]
    assert next_requests([("huge", 500)], window, 1, 1) == []


def test_the_time_left_follows_the_observed_rate() -> None:
    assert estimate(online=0, pending=10, failed=0, elapsed=30).seconds_left is None
    assert estimate(online=5, pending=10, failed=1, elapsed=30).seconds_left == 60
    assert estimate(online=5, pending=0, failed=0, elapsed=30).seconds_left == 0


def test_progress_says_online_pending_failed_and_time_left() -> None:
    text = estimate(online=4, pending=40, failed=1, elapsed=60).describe()
    assert text == "4 online, 40 pending, 1 failed; about 10 min left"

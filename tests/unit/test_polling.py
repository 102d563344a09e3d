"""The schedule of pauses between looks at a rule's progress."""

from itertools import islice

from datalake_core.polling import FIRST_POLL, poll_delays


def test_pauses_start_at_a_quarter_second_and_double_up_to_the_ceiling():
    assert list(islice(poll_delays(2.0), 7)) == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_ceiling_between_two_doublings_is_reached_exactly():
    assert list(islice(poll_delays(1.5), 5)) == [0.25, 0.5, 1.0, 1.5, 1.5]


def test_a_ceiling_below_the_first_pause_is_used_from_the_start():
    assert list(islice(poll_delays(0.1), 3)) == [0.1, 0.1, 0.1]


def test_a_wait_of_ten_seconds_costs_at_most_three_looks_more_than_fixed_two_second_polls():
    def looks(delays):
        waited, count = 0.0, 1
        for delay in delays:
            if waited + delay > 10:
                return count
            waited, count = waited + delay, count + 1
        return count

    fixed = looks(iter([2.0] * 100))
    assert FIRST_POLL == 0.25
    assert looks(poll_delays(2.0)) - fixed <= 3

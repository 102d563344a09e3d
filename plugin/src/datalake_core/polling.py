"""How long to wait between looks at something another service finishes (a rule's transfers).

A fixed pause makes every wait at least that long, even when the service is done a moment after
the first look. The pauses here start short and double up to a ceiling, so a quick answer is
seen quickly and a slow one costs no more requests per minute than the ceiling allows.
"""

from __future__ import annotations

from collections.abc import Iterator

FIRST_POLL = 0.25  # seconds before the second look


def poll_delays(ceiling: float, first: float = FIRST_POLL) -> Iterator[float]:
    """`first`, 2 x `first`, ... doubled up to `ceiling`, then `ceiling` for ever; a ceiling
    below `first` gives that ceiling every time."""
    delay = min(first, ceiling)
    while True:
        yield delay
        delay = min(delay * 2, ceiling)


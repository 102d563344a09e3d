"""One retry policy for both replica readers (HTTPS and XRootD): a connection that was reset or
timed out is tried again after a short pause; anything else ends the read at once.

When every attempt fails, the error is the last attempt's. A retry often fails differently and
says less (the first read got halfway before the server died; the retry cannot even connect), so
the first failure's message is kept in it: how far the read got is what an operator asks first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import TransferFailed, TransientFailure

ATTEMPTS = 3  # a reset or timed-out connection is tried again, after BACKOFF, 2 x BACKOFF
BACKOFF = 0.5


def retrying(read: Callable[[], None]) -> None:
    """`read()`, again after BACKOFF, 2 x BACKOFF while it fails with a TransientFailure."""
    first: TransientFailure | None = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return read()
        except TransientFailure as exc:
            first = first or exc
            if attempt == ATTEMPTS:
                raise _with_first(exc, first, attempt) from exc
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        except TransferFailed as exc:
            if first is None:
                raise
            raise _with_first(exc, first, attempt) from exc


def _with_first(last: TransferFailed, first: TransientFailure, attempts: int) -> TransferFailed:
    if last is first or str(last) == str(first):
        return last
    return type(last)(f"{last} (attempt {attempts}; the first failed: {first})")

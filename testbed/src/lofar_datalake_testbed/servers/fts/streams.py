"""What every copy shares: FTS-style errors and the checksum a job names.

Reasons read like FTS's ("SOURCE [2] ...", "DESTINATION [17] ...") because Rucio matches on
them, e.g. on "Destination file exists and overwrite is not enabled".
"""

from __future__ import annotations

import errno

EXISTS_MESSAGE = "Destination file exists and overwrite is not enabled"


class TransferError(Exception):
    def __init__(self, scope: str, code: int, message: str, *, recoverable: bool = True) -> None:
        super().__init__(f"{scope} [{code}] {message}")
        self.recoverable = recoverable


class Aborted(Exception):
    """The copy was stopped on request (cancel or shutdown); partial output is gone."""


def exists_error() -> TransferError:
    return TransferError("DESTINATION", errno.EEXIST, EXISTS_MESSAGE, recoverable=False)


def parse_checksum(text: str | None) -> tuple[str, str | None]:
    """'ADLER32:1a2b' -> ('adler32', '00001a2b'); a bare algorithm has no value."""
    if not text:
        return "adler32", None
    algorithm, _, value = text.partition(":")
    algorithm = algorithm.strip().lower()
    value = value.strip().lower()
    if algorithm == "adler32" and value:
        value = value.zfill(8)  # Rucio and FTS both drop leading zeros at times
    return algorithm, value or None

"""The error types of the DataLake core, in one place.

Every failure the core reports is one of these; none of them names Rucio's or FTS's own exception
classes (the adapters translate those), so callers need to know only this module. Each message
says what was tried, on which DID, RSE or setting, and why.

- `DataLakeError` and its subclasses: an operation on the DataLake failed (`StorageWriteError`:
  an upload's bytes did not reach the RSE);
- `SettingsError`, `QueryError`: a value given by the user is invalid (ValueErrors, so that
  argument parsers report them as such);
- `TransferFailed` and its subclasses: one attempt to obtain one replica failed; staging tries
  the next replica, and reports all of them in a `StagingError` if none works.
"""

from __future__ import annotations


class DataLakeError(RuntimeError):
    """An operation on the DataLake failed; the message names what was tried and why."""


class RucioUnavailable(DataLakeError):
    """The Rucio server could not be reached, or did not answer within the timeout."""


class RucioAuthError(DataLakeError):
    """Rucio did not accept the account's credentials, or there were none to present."""


class NotFound(DataLakeError):
    """The DID or rule asked about does not exist (often an answer rather than a failure)."""


class AlreadyExists(DataLakeError):
    """What was to be created or attached exists already (often fine: nothing to do)."""


class DuplicateRuleError(AlreadyExists):
    """This account already has a rule for (one of) these DIDs on that RSE expression."""


class StagingError(DataLakeError):
    """No replica of a file could be made available; names the DID, the RSEs and reasons."""


class StorageWriteError(DataLakeError):
    """Writing a file's bytes to an RSE failed (TLS, refused, wrong size, no usable protocol);
    the message names the storage host, the RSE and what to check."""


class StorageTargetExists(StorageWriteError):
    """The storage holds a file at the upload's PFN already: nothing was written over it."""


class UntrustedStorage(StorageWriteError):
    """The storage's TLS certificate could not be verified: nothing was sent to it."""


class FtsTimeout(DataLakeError):
    """A job did not reach a final state in the time it was given."""


class JobCredentialError(DataLakeError):
    """A job credential could not be made, found, or is no longer valid."""


class SettingsError(ValueError):
    """A setting has a value the provider cannot use; the message names the setting."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting.replace("_", "-")  # as in --storage-datalake-<setting>
        self.reason = reason
        super().__init__(f"{self.setting}: {reason}")


class QueryError(ValueError):
    """The query is not a valid `datalake://scope/name`; the message says why."""


class TransferFailed(Exception):
    """One attempt to obtain a replica failed; the message is the reason, without secrets."""


class CorruptReplica(TransferFailed):
    """The replica's bytes do not match the catalogue (size or adler32): a suspect for an operator
    to declare bad, not a passing network problem."""


class LocalWriteError(TransferFailed):
    """The local staging area cannot take the file (full, read-only, ...): another replica would
    not help, so staging stops here."""


class TransientFailure(TransferFailed):
    """The connection was reset or timed out: the same replica may well work a moment later."""

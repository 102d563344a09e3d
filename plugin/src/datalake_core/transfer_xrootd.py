"""XRootD reads of replicas (`root://` PFNs) with the XRootD client's `xrdcp`: the same contract
as `transfer_http.fetch`. The bytes stream from `xrdcp` (no shell) into `<name>.part` while
they are checksummed; the file is renamed only once size and adler32 match the catalogue, and
on any failure nothing is left under either name.

`xrdcp` finds its own credentials as every grid tool does (X509_USER_PROXY, X509_CERT_DIR, a
bearer token); a public replica needs none. Its connection and request timeouts are set from
the plugin's (unless the environment sets them), so a dead server ends a read in seconds rather
than after the client's default retries of several minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from .checksums import CHUNK, Adler32
from .errors import TransferFailed, TransientFailure
from .materialise import commit, local_error, open_part, part_name
from .transfer_retry import retrying

XRDCP = "xrdcp"
CONNECT_TIMEOUT = 15
_TRANSIENT = ("timeout", "timed out", "reset by peer", "broken pipe")


def fetch(url: str, dest: Path, *, size: int, adler32: str | None, timeout: float) -> None:
    """`fetch_once`, again after a short pause when the connection was reset or timed out."""
    retrying(lambda: fetch_once(url, dest, size=size, adler32=adler32, timeout=timeout))


def fetch_once(url: str, dest: Path, *, size: int, adler32: str | None, timeout: float) -> None:
    """Copy `url` to `dest` through `xrdcp`. A failed or short copy is TransferFailed (or
    TransientFailure), a complete copy that differs from the catalogue CorruptReplica."""
    binary = shutil.which(XRDCP)
    if binary is None:
        raise TransferFailed(f"cannot read {_origin(url)}: `{XRDCP}` is not installed (the "
                             "XRootD client: Debian xrootd-client, EL xrootd-client)")
    part = part_name(dest)
    digest = Adler32()
    written = 0
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([binary, "--nopbar", url, "-"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=errors, env=_env(timeout))
        try:
            assert proc.stdout is not None
            with open_part(dest, size) as handle:
                while chunk := proc.stdout.read(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            returncode = proc.wait()
        except OSError as exc:  # writing the .part
            _stop(proc)
            part.unlink(missing_ok=True)
            raise local_error(exc, dest, size) from None
        except BaseException:
            _stop(proc)
            part.unlink(missing_ok=True)
            raise
        if returncode != 0:
            part.unlink(missing_ok=True)
            raise _failure(url, _last_error(errors), written, size)
    commit(part, dest, size=size, adler32=adler32, got_size=written,
           got_adler32=digest.hexdigest())


def _env(timeout: float) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("XRD_CONNECTIONWINDOW", str(CONNECT_TIMEOUT))
    env.setdefault("XRD_CONNECTIONRETRY", "1")
    env.setdefault("XRD_REQUESTTIMEOUT", str(max(1, round(timeout))))
    env.setdefault("XRD_STREAMTIMEOUT", str(max(1, round(timeout))))
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def _last_error(errors: IO[bytes]) -> str:
    """xrdcp's own reason: its last `[ERROR]`/`[FATAL]` line, else its last line."""
    errors.seek(0)
    lines = [line.strip() for line in errors.read().decode(errors="replace").splitlines()
             if line.strip()]
    flagged = [line for line in lines if "[ERROR]" in line or "[FATAL]" in line]
    text = " ".join((flagged or lines or ["no message"])[-1].removeprefix("Run: ").split())
    return text if len(text) < 300 else text[:300] + "…"


def _failure(url: str, reason: str, written: int, size: int) -> TransferFailed:
    where = _origin(url)
    after = f" after {written} of {size} bytes" if written else ""
    message = f"xrdcp from {where} failed{after}: {reason}"
    transient = any(word in reason.lower() for word in _TRANSIENT)
    return (TransientFailure if transient else TransferFailed)(message)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

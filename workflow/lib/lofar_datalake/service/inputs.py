"""The sizes of a submission's DIDs, asked of Rucio as the researcher, before anything runs:
an unknown DID is refused by name and inputs over the researcher's limit of staged bytes are
refused with the numbers.

Rucio's client reads one configuration per process, and the service serves many researchers,
so each question is asked by a short process of its own (`python -m
lofar_datalake.service.inputs CONFIG`), the DIDs on stdin, the researcher's secret in its
environment only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from datalake_core.job_auth import PASSWORD_ENV

from . import as_account
from .model import Researcher
from .submission import SubmissionError

TIMEOUT_S = 120


def sizes(dids: Sequence[str], researcher: Researcher, config: Path, secret: str,
          ) -> dict[str, int]:
    """Bytes of each DID (files, or all files in a dataset or container)."""
    try:
        done = as_account.ask("lofar_datalake.service.inputs", config, researcher.rucio_account,
                              list(dids), {PASSWORD_ENV: secret}, TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SubmissionError(f"Rucio did not say within {TIMEOUT_S} s how large the DIDs "
                              "are; try again later") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SubmissionError(f"Rucio could not list the DIDs as account "
                              f"{researcher.rucio_account}: {last}")
    return {str(k): int(v) for k, v in json.loads(done.stdout).items()}


def check(dids: Sequence[str], researcher: Researcher, config: Path, secret: str) -> int:
    """The total bytes of `dids`; SubmissionError naming unknown DIDs or the limit."""
    found = sizes(dids, researcher, config, secret)
    unknown = [d for d in dids if d not in found]
    if unknown:
        raise SubmissionError(f"Rucio knows no DID {', '.join(unknown)} (as account "
                              f"{researcher.rucio_account})")
    total = sum(found.values())
    limit = researcher.limits.staged_bytes
    if total > limit:
        raise SubmissionError(f"the DIDs hold {total / 1024**2:.1f} MiB, over your limit of "
                              f"{limit / 1024**2:.0f} MiB of inputs")
    return total


def _main(argv: Sequence[str]) -> int:
    from rucio.common.exception import DataIdentifierNotFound

    client = as_account.connect(list(argv)).client
    found: dict[str, int] = {}
    for did in json.loads(sys.stdin.read()):
        scope, name = str(did).split(":", 1)
        try:  # a file lists as itself, a dataset or container as all its files
            found[did] = sum(int(f.get("bytes") or 0) for f in client.list_files(scope, name))
        except DataIdentifierNotFound:
            continue
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

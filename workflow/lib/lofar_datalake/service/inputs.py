"""The sizes of a submission's DIDs, and where each of their files has an AVAILABLE replica,
asked of Rucio as the researcher before anything runs: an unknown DID is refused by name,
inputs over the researcher's limit of staged bytes are refused with the numbers, and the
replicas' RSEs let intake refuse a site that cannot read them (health.input_refusal).

Rucio's client reads one configuration per process, and the service serves many researchers,
so each question is asked by a short process of its own (`python -m
lofar_datalake.service.inputs CONFIG`), the DIDs on stdin, the researcher's password or
access token in its environment only (run_credentials.for_service).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datalake_core.did import Did

from . import as_account
from .model import Researcher
from .submission import SubmissionError

TIMEOUT_S = 120


@dataclass(frozen=True)
class Input:
    """A DID as Rucio lists it: the bytes of its files (itself, or all the files of a dataset or
    container) and the RSEs holding an AVAILABLE replica of each file ("scope:name")."""

    bytes: int
    replicas: dict[str, list[str]]


def listed(dids: Sequence[str], researcher: Researcher, config: Path,
           credentials: Mapping[str, str]) -> dict[str, Input]:
    """Each DID Rucio knows, as the researcher."""
    try:
        done = as_account.ask("lofar_datalake.service.inputs", config, researcher.rucio_account,
                              list(dids), credentials, TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SubmissionError(f"Rucio did not say within {TIMEOUT_S} s how large the DIDs "
                              "are; try again later") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SubmissionError(f"Rucio could not list the DIDs as account "
                              f"{researcher.rucio_account}: {last}")
    return {str(did): Input(int(v["bytes"]), {str(f): [str(r) for r in rses]
                                              for f, rses in v["replicas"].items()})
            for did, v in json.loads(done.stdout).items()}


def check(dids: Sequence[str], researcher: Researcher, config: Path,
          credentials: Mapping[str, str]) -> dict[str, Input]:
    """Each of `dids` as Rucio lists it; SubmissionError naming unknown DIDs or the limit."""
    found = listed(dids, researcher, config, credentials)
    unknown = [d for d in dids if d not in found]
    if unknown:
        raise SubmissionError(f"Rucio knows no DID {', '.join(unknown)} (as account "
                              f"{researcher.rucio_account})")
    total = sum(i.bytes for i in found.values())
    limit = researcher.limits.staged_bytes
    if total > limit:
        raise SubmissionError(f"the DIDs hold {total / 1024**2:.1f} MiB, over your limit of "
                              f"{limit / 1024**2:.0f} MiB of inputs")
    return found


def _main(argv: Sequence[str]) -> int:
    from rucio.common.exception import DataIdentifierNotFound

    rucio = as_account.connect(list(argv))
    files: dict[str, list[str]] = {}
    size: dict[str, int] = {}
    for did in json.loads(sys.stdin.read()):
        scope, name = str(did).split(":", 1)
        try:  # a file lists as itself, a dataset or container as all its files
            listing = list(rucio.client.list_files(scope, name))
        except DataIdentifierNotFound:
            continue
        files[did] = [f"{f['scope']}:{f['name']}" for f in listing]
        size[did] = sum(int(f.get("bytes") or 0) for f in listing)
    every = [Did(*f.split(":", 1)) for f in dict.fromkeys(f for fs in files.values() for f in fs)]
    # One bulk request for all the files (per 1,000), every state listed, AVAILABLE kept.
    available = {f"{r['scope']}:{r['name']}": sorted(
        rse for rse, state in (r.get("states") or {}).items() if state == "AVAILABLE")
        for r in rucio.list_replicas(every)}
    print(json.dumps({did: {"bytes": size[did],
                            "replicas": {f: available.get(f, []) for f in fs}}
                      for did, fs in files.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

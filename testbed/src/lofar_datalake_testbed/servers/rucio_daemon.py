"""Run one of Rucio's daemons unchanged, with two settings upstream hard-codes changed.

`python -m lofar_datalake_testbed.servers.rucio_daemon <daemon> [ARGS]` runs Rucio's own
`rucio-<daemon>` script after:

- **TLS to FTS verified.** Rucio's `FTS3Transfertool` sends every request to an https FTS with
  `verify=False` (rucio 41.5.1, `transfertool/fts3.py`): the conveyor would hand its client
  certificate and the DataLake's transfers to whoever answers on the FTS port. Here it checks
  the FTS server's certificate against `$LOFAR_DATALAKE_FTS_CA` (the testbed's CA).
- **A short re-poll delay** (conveyor-poller only). The poller marks each transfer it polls and
  skips it for `processed_at_delay` seconds, which Rucio hard-codes to 600 for the continuous
  daemon. Production DataLakes learn of finished transfers within seconds from FTS's message
  stream (conveyor-receiver, needs a STOMP broker); the poller there is only the safety net. The
  testbed has no broker, so a transfer still ACTIVE at its first poll would wait 10 minutes.

Testbed only; both are worth raising upstream.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

REPOLL_DELAY_S = int(os.environ.get("LOFAR_DATALAKE_POLLER_REPOLL_S", "3"))
FTS_CA_ENV = "LOFAR_DATALAKE_FTS_CA"


def verify_fts_tls(ca_bundle: str) -> None:
    """Make every FTS3Transfertool made from now on verify an https FTS against `ca_bundle`."""
    from rucio.transfertool.fts3 import FTS3Transfertool

    original = FTS3Transfertool.__init__

    def init(self: Any, external_host: str, *args: Any, **kwargs: Any) -> None:
        original(self, external_host, *args, **kwargs)
        if external_host.startswith("https://"):
            self.verify = ca_bundle

    FTS3Transfertool.__init__ = init


def short_repoll() -> None:
    import rucio.core.request as request_core

    original = request_core.get_and_mark_next

    def get_and_mark_next(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("processed_at_delay", REPOLL_DELAY_S)
        return original(*args, **kwargs)

    request_core.get_and_mark_next = get_and_mark_next


def main() -> None:
    daemon, *args = sys.argv[1:] or [""]
    if not daemon:
        raise SystemExit("usage: rucio_daemon <daemon> [ARGS]  (e.g. conveyor-submitter)")
    ca_bundle = os.environ.get(FTS_CA_ENV)
    if ca_bundle:
        verify_fts_tls(ca_bundle)
    if daemon == "conveyor-poller":
        short_repoll()
    name = f"rucio-{daemon}"
    script = Path(sys.executable).with_name(name)
    found = str(script) if script.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found")
    sys.argv = [found, *args]
    runpy.run_path(found, run_name="__main__")


if __name__ == "__main__":
    main()

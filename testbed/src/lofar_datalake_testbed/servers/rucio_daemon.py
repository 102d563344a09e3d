"""Run one of Rucio's daemons unchanged, with one setting upstream hard-codes changed.

`python -m lofar_datalake_testbed.servers.rucio_daemon <daemon> [ARGS]` runs Rucio's own
`rucio-<daemon>` script after:

- **TLS to FTS verified.** Rucio's `FTS3Transfertool` sends every request to an https FTS with
  `verify=False` (rucio 41.5.1, `transfertool/fts3.py`): the conveyor would hand its client
  certificate and the DataLake's transfers to whoever answers on the FTS port. Here it checks
  the FTS server's certificate against `$LOFAR_DATALAKE_FTS_CA` (the testbed's CA).

The conveyor-poller runs as upstream ships it: it polls transfers submitted more than 60 s ago
(`--older-than 60`) and each again only after 600 s (`processed_at_delay`, hard-coded). As in
production DataLakes, Rucio learns of finished transfers from FTS's completion messages
(conveyor-receiver, through the testbed's broker: `lofar_datalake_testbed/broker.py`) within a
second; the poller is the safety net for a message lost on the way. Until the receiver came, the
testbed shortened that 600 s to 3 s, and a rule's transfer waited for the poller's next pass.

Testbed only; worth raising upstream.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

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


def main() -> None:
    daemon, *args = sys.argv[1:] or [""]
    if not daemon:
        raise SystemExit("usage: rucio_daemon <daemon> [ARGS]  (e.g. conveyor-submitter)")
    ca_bundle = os.environ.get(FTS_CA_ENV)
    if ca_bundle:
        verify_fts_tls(ca_bundle)
    name = f"rucio-{daemon}"
    script = Path(sys.executable).with_name(name)
    found = str(script) if script.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found")
    sys.argv = [found, *args]
    runpy.run_path(found, run_name="__main__")


if __name__ == "__main__":
    main()

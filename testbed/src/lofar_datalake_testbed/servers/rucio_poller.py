"""Run `rucio-conveyor-poller` with a short re-poll delay.

The poller marks each transfer it polls and skips it for `processed_at_delay` seconds, a keyword
Rucio hard-codes to 600 for the continuous daemon. Production DataLakes learn of finished
transfers within seconds from FTS's message stream (conveyor-receiver, needs a STOMP broker);
the poller there is only the safety net. The testbed has no broker, so a transfer still ACTIVE at
its first poll would wait 10 minutes for the next one. This launcher shortens the delay and then
runs Rucio's own daemon script unchanged. Testbed only.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

REPOLL_DELAY_S = int(os.environ.get("LOFAR_DATALAKE_POLLER_REPOLL_S", "3"))


def main() -> None:
    import rucio.core.request as request_core

    original = request_core.get_and_mark_next

    def get_and_mark_next(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("processed_at_delay", REPOLL_DELAY_S)
        return original(*args, **kwargs)

    request_core.get_and_mark_next = get_and_mark_next
    script = Path(sys.executable).with_name("rucio-conveyor-poller")
    found = str(script) if script.exists() else shutil.which("rucio-conveyor-poller")
    if found is None:
        raise SystemExit("rucio-conveyor-poller not found")
    sys.argv[0] = found
    runpy.run_path(found, run_name="__main__")


if __name__ == "__main__":
    main()

"""One stage-in in a process of its own, timed from outside like the `rucio download` baseline:
the interpreter starts, the provider is built from its settings, authenticates to Rucio,
resolves the DIDs and stages them all (one job's inputs). Writes what the parent needs for the
breakdown of the site transfer as JSON.

    python bench/staging/stage_once.py SETTINGS.json OUT.json DEST DID...
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datalake_core.rucio_adapter import Did
from staging.provider import Staging


def main(argv: list[str]) -> int:
    settings, out, dest = Path(argv[0]), Path(argv[1]), Path(argv[2])
    dids = [Did(*d.split(":", 1)) for d in argv[3:]]
    started = time.time()
    staging = Staging(json.loads(settings.read_text()), out.parent / "journal")
    staging.resolve(dids)
    hows = staging.stage(dids, dest)
    finished = time.time()
    out.write_text(json.dumps({"hows": [str(h) for h in hows], "started": started,
                               "finished": finished, "site_done": staging.site_done(),
                               "rules": list(staging.stager.site.rules_created)}))
    staging.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What other distributions add to `lofar-datalake`, found through entry points.

The pipeline tools never import the testbed: the testbed (`lofar-datalake-testbed`) registers
its commands (`testbed`, `demo`), the `compare --demo` observation and its compute sites here,
and a machine without it simply has none of them.

- `lofar_datalake.commands`: a module with `HELP`, `add_arguments(parser)`, `run(args) -> int`;
- `lofar_datalake.demos`: `compare` → `prepare(comparison, fresh)`;
- `lofar_datalake.sites`: a name a profile's `testbed-site` marker may hold → a callable that
  returns the `SiteAccess` of that site (see `compare/at_site.py`), or raises if it is not up.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

COMMANDS = "lofar_datalake.commands"
DEMOS = "lofar_datalake.demos"
SITES = "lofar_datalake.sites"
TESTBED_DISTRIBUTION = "lofar-datalake-testbed"


def registered(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str, wanted_for: str) -> Any:
    """The object registered as `name` in `group`; a clear error when nothing provides it."""
    found = registered(group).get(name)
    if found is None:
        raise RuntimeError(
            f"{wanted_for} needs {TESTBED_DISTRIBUTION}, which is not installed here "
            f"(pip install -e testbed/ from the project, or `make install`)"
        )
    return found.load()

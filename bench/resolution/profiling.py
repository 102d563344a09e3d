"""Where the added time goes.

Two views, both for one bulk pass over 1,000 inputs:
- `request_split`: the provider's Rucio requests replayed over the client's own HTTP session, the
  body received in full before it is parsed, so server + transfer time and client-side parsing
  are timed apart (same payloads as `RucioAdapter`);
- `breakdown`: a cProfile'd `snakemake -n` with a provider against the same workflow on local
  files; self time grouped by who spends it (builtins are charged to their callers). cProfile
  slows Python code down ~1.5-2x, so the groups are for attribution, not absolute figures.
"""

from __future__ import annotations

import json
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datalake_core.rucio_adapter import RucioAdapter

SERVER = "waiting for the Rucio server (socket)"
CLIENT = "HTTP + Rucio client (requests, JSON, datetimes)"
PROVIDER = "storage plugin code"
SNAKEMAKE = "Snakemake and its storage interface"
IMPORTS = "module imports"
OTHER = "other (stdlib: pathlib, re, asyncio, ...)"
GROUPS = (SERVER, CLIENT, PROVIDER, SNAKEMAKE, IMPORTS, OTHER)

_SOCKET_WAITS = ("recv_into", "recv", "sendall", "connect", "getaddrinfo", "read of '_ssl")
_CLIENT_PATHS = (
    "/rucio/",
    "/requests/",
    "/urllib3/",
    "/json/",
    "_strptime.py",
    "/http/client",
    "/dogpile/",
    "/email/",
    "/charset_normalizer/",
    "/idna/",
    "/socket.py",
    "/ssl.py",
    "/jwt/",
)
_PROVIDER_PATHS = ("/lofar_datalake/", "/snakemake_storage_plugin_")
_SNAKEMAKE_PATHS = ("/snakemake/", "/snakemake_interface_")


def _group_of_file(filename: str) -> str | None:
    if filename.startswith("<frozen"):
        return IMPORTS
    for paths, group in (
        (_PROVIDER_PATHS, PROVIDER),
        (_CLIENT_PATHS, CLIENT),
        (_SNAKEMAKE_PATHS, SNAKEMAKE),
    ):
        if any(p in filename for p in paths):
            return group
    return None if filename == "~" else OTHER


def breakdown(profile: Path) -> dict[str, float]:
    """Self time per group, in cProfile seconds."""
    stats: dict[Any, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    out = dict.fromkeys(GROUPS, 0.0)
    for (filename, _, name), (_, _, tottime, _, callers) in stats.items():
        group = _group_of_file(filename)
        if group is not None:
            out[group] += tottime
        elif "socket" in name and any(w in name for w in _SOCKET_WAITS):
            out[SERVER] += tottime
        else:  # a builtin: charged to its callers, by the time spent for each
            for (cfile, _, _), caller in callers.items():
                out[_group_of_file(cfile) or OTHER] += caller[2]
    return out


def _median_time(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.monotonic()
        result = call()
        times.append(time.monotonic() - started)
    return statistics.median(times), result


def request_split(
    rucio: RucioAdapter, scope: str, names: list[str], pattern: str, repeat: int = 3
) -> dict[str, dict[str, float]]:
    """Server + transfer and client parse time of each request of one bulk pass."""
    from rucio.common.utils import parse_response  # type: ignore[import-untyped]

    client = rucio.client
    client.whoami()  # authenticated: the token is in client.headers from here on
    dids = [{"scope": scope, "name": n} for n in names]
    payloads = {
        # RucioAdapter.list_replicas: all_states, sort='random', the client's other defaults
        "POST /replicas/list": (
            "replicas/list",
            {
                "dids": dids,
                "domain": None,
                "ignore_availability": True,
                "all_states": True,
                "sort": "random",
                "resolve_archives": True,
                "resolve_parents": False,
            },
        ),
        # RucioAdapter.get_metadata_bulk
        "POST /dids/bulkmeta": (
            "dids/bulkmeta",
            {"dids": dids, "inherit": False, "plugin": "DID_COLUMN"},
        ),
    }
    out: dict[str, dict[str, float]] = {}
    seconds, _ = _median_time(
        lambda: list(client.list_dids(scope, {"name": pattern}, did_type="file")), repeat
    )
    # Names only: parsing is negligible, the whole call is the server's.
    out["GET /dids/{scope}/dids/search"] = {"server_s": seconds, "parse_s": 0.0}
    for key, (path, payload) in payloads.items():
        body = json.dumps(payload)

        def fetch(path: str = path, body: str = body) -> bytes:
            response = client.session.post(
                f"{client.host}/{path}", headers=client.headers, data=body, verify=client.ca_cert
            )
            response.raise_for_status()
            return bytes(response.content)

        server, content = _median_time(fetch, repeat)
        lines: list[bytes] = [line for line in content.splitlines() if line]

        def parse(lines: list[bytes] = lines) -> list[Any]:
            return [parse_response(x) for x in lines]

        parse_s, records = _median_time(parse, repeat)
        if len(records) != len(names):
            raise SystemExit(f"{key}: {len(records)} records for {len(names)} DIDs")
        out[key] = {"server_s": server, "parse_s": parse_s}
    return out

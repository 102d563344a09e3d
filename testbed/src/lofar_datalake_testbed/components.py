"""The testbed's processes: what each runs, with which environment, and how health is probed."""

from __future__ import annotations

import requests

from .layout import LOOPBACK, SITES, Layout
from .pki import Pki
from .processes import ManagedProcess
from .server_env import ServerEnv

# Daemons that turn a replication rule into bytes moved by FTS, and clean up after expired rules.
# `--sleep-time 1`: a `--run-once` loop costs ~12.5 s each (fixed partition wait); continuous
# daemons with short sleeps make a rule complete in seconds.
DAEMONS: dict[str, list[str]] = {
    "judge-evaluator": ["--sleep-time", "1", "--threads", "1"],
    "judge-cleaner": ["--sleep-time", "5", "--threads", "1"],
    "conveyor-submitter": ["--sleep-time", "1", "--total-threads", "1"],
    # --older-than 0: poll FTS for every submitted transfer, not only those older than 60 s.
    "conveyor-poller": ["--sleep-time", "1", "--total-threads", "1", "--older-than", "0"],
    "conveyor-finisher": ["--sleep-time", "1", "--total-threads", "1"],
}



def _http_ok(url: str, verify: str | bool = True, cert: str | None = None) -> bool:
    try:
        return requests.get(url, timeout=2, verify=verify, cert=cert).status_code < 500
    except requests.RequestException:
        return False


def rucio_server(env: ServerEnv, layout: Layout, ports: dict[str, int]) -> ManagedProcess:
    port = ports["rucio"]
    return ManagedProcess(
        name="rucio-server",
        argv=[
            env.bin("gunicorn"),
            "--bind",
            f"{LOOPBACK}:{port}",
            "--workers",
            "2",
            "--timeout",
            "300",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
            "rucio.web.rest.flaskapi.v1.main:application",
        ],
        run_dir=layout.run,
        log_dir=layout.logs,
        env={"RUCIO_CONFIG": str(layout.server_config)},
        ready=lambda: _http_ok(f"http://{LOOPBACK}:{port}/ping"),
    )


def webdav_servers(
    env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki
) -> list[ManagedProcess]:
    servers = []
    for site in SITES:
        port = ports[f"dav_{site.rse}"]
        servers.append(
            ManagedProcess(
                name=f"webdav-{site.rse}",
                argv=env.module(
                    "webdav",
                    "--root",
                    str(layout.rse_dir(site.rse)),
                    "--port",
                    str(port),
                    "--cert",
                    str(pki.server_cert),
                    "--key",
                    str(pki.server_key),
                    "--client-ca",
                    str(pki.ca_cert),
                    "--anonymous-read",
                    "yes" if site.anonymous_read else "no",
                ),
                run_dir=layout.run,
                log_dir=layout.logs,
                ready=lambda port=port: _http_ok(  # type: ignore[misc]
                    f"https://{LOOPBACK}:{port}/", verify=str(pki.ca_cert)
                ),
            )
        )
    return servers


def fts_url(ports: dict[str, int]) -> str:
    """The FTS service's endpoint: https only, it requires a client certificate."""
    return f"https://{LOOPBACK}:{ports['fts']}"


def fts_service(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki) -> ManagedProcess:
    """FTS over https for holders of a testbed-CA certificate, copying `file://` URLs only
    inside the RSE directories."""
    roots = [arg for site in SITES for arg in ("--storage-root", str(layout.rse_dir(site.rse)))]
    endpoint = fts_url(ports)
    return ManagedProcess(
        name="fts",
        argv=env.module(
            "fts",
            "--state-dir",
            str(layout.fts_dir),
            "--port",
            str(ports["fts"]),
            "--cert",
            str(pki.server_cert),
            "--key",
            str(pki.server_key),
            "--client-ca",
            str(pki.ca_cert),
            *roots,
            "--ca-bundle",
            str(pki.ca_cert),
            "--max-active",
            "8",
        ),
        run_dir=layout.run,
        log_dir=layout.logs,
        env={"X509_USER_PROXY": str(pki.proxy)},  # its client certificate for writing to storage
        ready=lambda: _http_ok(f"{endpoint}/", verify=str(pki.ca_cert), cert=str(pki.proxy)),
    )


def rucio_daemons(env: ServerEnv, layout: Layout, pki: Pki) -> list[ManagedProcess]:
    settings = {"RUCIO_CONFIG": str(layout.server_config), "X509_USER_PROXY": str(pki.proxy)}
    daemons = []
    for name, args in DAEMONS.items():
        if name == "conveyor-poller":  # see rucio_poller.py: re-poll delay of seconds, not 600
            argv = env.module("rucio_poller", *args)
        else:
            argv = [env.bin(f"rucio-{name}"), *args]
        daemons.append(
            ManagedProcess(
                name=f"rucio-{name}",
                argv=argv,
                run_dir=layout.run,
                log_dir=layout.logs,
                env=settings,
            )
        )
    return daemons

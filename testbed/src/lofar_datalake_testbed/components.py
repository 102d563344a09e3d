"""The testbed's processes: what each runs, with which environment, and how health is probed."""

from __future__ import annotations

import requests

from . import broker, xrootd
from .layout import LOOPBACK, SITES, TAPE_PORT, TAPE_RSE, WEBDAV, XROOTD, Layout
from .pki import Pki
from .processes import ManagedProcess
from .server_env import ServerEnv
from .tokens import ANY_AUDIENCE, issuer_url

# Daemons that turn a replication rule into bytes moved by FTS, and clean up after expired rules.
# `--sleep-time 1`: a `--run-once` loop costs ~12.5 s each (fixed partition wait); continuous
# daemons with short sleeps make a rule complete in seconds.
DAEMONS: dict[str, list[str]] = {
    "judge-evaluator": ["--sleep-time", "1", "--threads", "1"],
    "judge-cleaner": ["--sleep-time", "5", "--threads", "1"],
    "conveyor-submitter": ["--sleep-time", "1", "--total-threads", "1"],
    # The safety net for messages lost on the way (servers/rucio_daemon.py): transfers
    # submitted over 60 s ago, each polled again after 600 s, upstream's defaults.
    "conveyor-poller": ["--sleep-time", "1", "--total-threads", "1", "--older-than", "60"],
    # FTS's completion messages, through the broker (broker.py): a transfer FTS finished is
    # DONE in Rucio within a second.
    "conveyor-receiver": ["--total-threads", "1"],
    "conveyor-finisher": ["--sleep-time", "1", "--total-threads", "1"],
    # Submits the STAGEIN requests of rules on the staging area (tape recalls) to FTS.
    "conveyor-stager": ["--sleep-time", "1", "--total-threads", "1"],
}
# The tape library behind LTA_TAPE (servers/fts/staging.py): seconds one drive takes to recall
# a file, and drives; small, so that tests and the demo see recalls queue without waiting long.
RECALL_SECONDS = 2.0
TAPE_DRIVES = 2



def _http_ok(url: str, verify: str | bool = True, cert: str | None = None) -> bool:
    try:
        return requests.get(url, timeout=2, verify=verify, cert=cert).status_code < 500
    except requests.RequestException:
        return False


def rucio_url(ports: dict[str, int]) -> str:
    """The Rucio server's endpoint: https only, with the testbed's server certificate."""
    return f"https://{LOOPBACK}:{ports['rucio']}"


def rucio_server(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki
                 ) -> ManagedProcess:
    port = ports["rucio"]
    return ManagedProcess(
        name="rucio-server",
        argv=[
            env.bin("gunicorn"),
            "--bind",
            f"{LOOPBACK}:{port}",
            "--certfile",
            str(pki.server_cert),
            "--keyfile",
            str(pki.server_key),
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
        # The CA it checks the token issuer's certificate with (pyoidc reads discovery and keys).
        env={"RUCIO_CONFIG": str(layout.server_config), "REQUESTS_CA_BUNDLE": str(pki.ca_cert)},
        ready=lambda: _http_ok(f"{rucio_url(ports)}/ping", verify=str(pki.ca_cert)),
    )


def token_issuer(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki) -> ManagedProcess:
    """The OpenID issuer (servers/issuer.py) over TLS; its clients written by `tokens`."""
    from .tokens import clients_file, issuer_url, signing_key, users_file

    url = issuer_url(ports)
    return ManagedProcess(
        name="token-issuer",
        argv=env.module(
            "issuer",
            "--port",
            str(ports["issuer"]),
            "--cert",
            str(pki.server_cert),
            "--key",
            str(pki.server_key),
            "--clients",
            str(clients_file(layout)),
            "--users",
            str(users_file(layout)),
            "--signing-key",
            str(signing_key(layout)),
        ),
        run_dir=layout.run,
        log_dir=layout.logs,
        ready=lambda: _http_ok(f"{url}/.well-known/openid-configuration",
                               verify=str(pki.ca_cert)),
    )


def token_options(own_url: str, ports: dict[str, int]) -> list[str]:
    """A service's options to accept the testbed issuer's tokens meant for it (its own URL) or
    for any WLCG service (the service reaches the issuer trusting its `--ca-bundle`)."""
    return [
        "--token-issuer",
        issuer_url(ports),
        "--token-audience",
        own_url,
        "--token-audience",
        ANY_AUDIENCE,
    ]


def webdav_server(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki, rse: str,
                  port: int, *policy: str) -> ManagedProcess:
    """A WsgiDAV server for `rse` on `port`, with the RSEs' credentials and `policy` options
    (who may read, nearline reads)."""
    url = f"https://{LOOPBACK}:{port}"
    return ManagedProcess(
        name=f"webdav-{rse}",
        argv=env.module(
            "webdav",
            "--root", str(layout.rse_dir(rse)),
            "--port", str(port),
            "--cert", str(pki.server_cert),
            "--key", str(pki.server_key),
            "--client-ca", str(pki.ca_cert),
            *policy,
            *token_options(url, ports),
            "--ca-bundle", str(pki.ca_cert),
        ),
        run_dir=layout.run,
        log_dir=layout.logs,
        ready=lambda: _http_ok(f"{url}/", verify=str(pki.ca_cert)),
    )


def webdav_servers(
    env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki
) -> list[ManagedProcess]:
    return [
        webdav_server(env, layout, ports, pki, site.rse, ports[site.https_port],
                      "--anonymous-read", "yes" if site.anonymous_read else "no")
        for site in SITES if site.storage == WEBDAV
    ]


def tape_url(ports: dict[str, int]) -> str:
    return f"https://{LOOPBACK}:{ports[TAPE_PORT]}"


def tape_storage(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki
                 ) -> ManagedProcess:
    """LTA_TAPE's endpoint (also LTA_STAGING's): WebDAV with the RSEs' credentials policy whose
    files are read only while pinned online (servers/tape.py)."""
    return webdav_server(env, layout, ports, pki, TAPE_RSE, ports[TAPE_PORT], "--nearline", "yes")


def xrootd_servers(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki
                   ) -> list[ManagedProcess]:
    """One Debian `xrootd` per XRootD RSE: `root://` and XrdHttp's https (see `xrootd`)."""
    servers = []
    for site in (s for s in SITES if s.storage == XROOTD):
        config = xrootd.write_config(layout, site, ports, pki)
        url = xrootd.https_url(ports, site)
        servers.append(ManagedProcess(
            name=f"xrootd-{site.rse}",
            argv=xrootd.argv(env.module("listen"), config, site, ports),
            run_dir=layout.run,
            log_dir=layout.logs,
            ready=lambda url=url: _http_ok(f"{url}/", verify=str(pki.ca_cert)),  # type: ignore[misc]
        ))
    return servers


def message_broker(env: ServerEnv, layout: Layout, ports: dict[str, int]) -> ManagedProcess:
    """coilmq on 127.0.0.1, logins required (broker.py); healthy when it accepts the
    receiver's login."""
    port = ports["broker"]
    return ManagedProcess(
        name="message-broker",
        argv=[env.bin("coilmq"), "--config", str(broker.config_file(layout))],
        run_dir=layout.run,
        log_dir=layout.logs,
        ready=lambda: broker.answers(port, broker.CONSUMER,
                                     broker.logins(layout)[broker.CONSUMER]),
    )


def fts_url(ports: dict[str, int]) -> str:
    """The FTS service's endpoint: https only, it requires a client certificate."""
    return f"https://{LOOPBACK}:{ports['fts']}"


def fts_service(env: ServerEnv, layout: Layout, ports: dict[str, int], pki: Pki) -> ManagedProcess:
    """FTS over https for holders of a testbed-CA certificate or a testbed-issuer token, copying
    `file://` URLs only inside the RSE directories."""
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
            # Its tape library: files under LTA_TAPE's endpoint are recalled before they are read.
            "--tape",
            f"{tape_url(ports)}={layout.rse_dir(TAPE_RSE)}",
            "--recall-seconds",
            str(RECALL_SECONDS),
            "--tape-drives",
            str(TAPE_DRIVES),
            *token_options(endpoint, ports),
            "--messages",
            str(broker.publisher_file(layout)),
        ),
        run_dir=layout.run,
        log_dir=layout.logs,
        # Its client certificate for writing to storage; for XRootD's gsi on root:// (gfal2's
        # xrootd plugin) the name to expect in the storage's certificate (CN localhost) when
        # the URL says 127.0.0.1, as xrootd.client_env gives xrdcp.
        env={"X509_USER_PROXY": str(pki.proxy), "XrdSecGSISRVNAMES": "localhost"},
        ready=lambda: _http_ok(f"{endpoint}/", verify=str(pki.ca_cert), cert=str(pki.proxy)),
    )


def rucio_daemons(env: ServerEnv, layout: Layout, pki: Pki) -> list[ManagedProcess]:
    # Through servers/rucio_daemon.py: the conveyor verifies the FTS service's certificate.
    settings = {"RUCIO_CONFIG": str(layout.server_config), "X509_USER_PROXY": str(pki.proxy),
                "LOFAR_DATALAKE_FTS_CA": str(pki.ca_cert)}
    daemons = []
    for name, args in DAEMONS.items():
        argv = env.module("rucio_daemon", name, *args)
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

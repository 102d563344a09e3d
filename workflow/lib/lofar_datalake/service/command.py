"""`lofar-datalake serve`: the web service, its workers and its database, in one process.

Starts (first time: makes) the state directory, the database (the embedded PostgreSQL under the
state directory unless `--database` names one), resumes what a previous run of the service left
(`Store.recover`), starts the workers (and, with `--probe`, the site-health prober) and serves
the pages and the API until stopped. Stopping (Ctrl-C, SIGTERM) stops the runs in progress
too; they are resumed at the next start.
"""

from __future__ import annotations

import argparse
import configparser
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the web stack loads when the service starts, not on every command
    from collections.abc import Mapping

    from .model import ProbeSettings, Researcher
    from .oidc import Provider
    from .token_client import Issuer
    from .worker import Settings, SiteEntry

HELP = "the web service: researchers submit workflows and read the DataLake verdict"
ROOT = Path(__file__).resolve().parents[4]
LOOPBACK = ("127.0.0.1", "::1", "localhost")  # workflow/lib/lofar_datalake/service -> project
# How long a stop waits for open connections. A client that holds a TLS connection open and
# never answers its close would otherwise hold the stop for asyncio's 30 s TLS shutdown.
GRACE_S = 5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password from stdin, print its argon2 hash for the "
                             "researchers file, and exit")
    parser.add_argument("--researchers", type=Path,
                        help="who may log in, as which Rucio account (see "
                             "config/researchers.example.yaml)")
    parser.add_argument("--sites", type=Path, default=ROOT / "config" / "sites.example.yaml",
                        help="the sites researchers may choose, in the placement sites file's "
                             "format (default: the testbed's, %(default)s)")
    parser.add_argument("--state", type=Path, default=Path(".service"),
                        help="the service's directory: database, runs (default: %(default)s)")
    parser.add_argument("--database", default="",
                        help="a PostgreSQL conninfo (default: an embedded PostgreSQL under "
                             "--state); taken from $LOFAR_DATALAKE_SERVICE_DATABASE if set")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--tls-cert", type=Path, help="the server's certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument("--rucio-config", type=Path,
                        help="a Rucio client configuration naming the DataLake's servers "
                             "(default: $RUCIO_CONFIG); its account and secret are not used")
    parser.add_argument("--ca-bundle", type=Path,
                        help="the CA of the DataLake's servers (default: the Rucio "
                             "configuration's ca_cert)")
    parser.add_argument("--workers", type=int, default=1,
                        help="comparisons run at once, over all researchers (default: 1)")
    parser.add_argument("--max-attempts", type=int, default=2,
                        help="starts of one submission, counting resumes after a restart")
    parser.add_argument("--probe", metavar="LOGIN", default="",
                        help="probe every site's health as this entry of the researchers file "
                             "(its Rucio account, first scope and secret or token client); "
                             "without it no probes run and every site is offered")
    parser.add_argument("--probe-interval", type=int, default=600, metavar="SECONDS",
                        help="seconds between the starts of two rounds of probes over every "
                             "site x RSE (default: %(default)s; 0: no probes)")
    parser.add_argument("--probe-timeout", type=int, default=300, metavar="SECONDS",
                        help="a probe still running after this fails (default: %(default)s)")
    parser.add_argument("--oidc-issuer", metavar="URL", default="",
                        help="also let researchers log in through this OpenID Connect issuer "
                             "(its TLS checked with --ca-bundle); the researchers file's "
                             "oidc_subject maps each person to their entry. Researchers' "
                             "token clients get their runs' access tokens there too (alone, "
                             "without --oidc-client-id: tokens only, no logins)")
    parser.add_argument("--oidc-client-id", default="",
                        help="the service's client id at the issuer (registered with the "
                             "redirect URI <this service's URL>/login/oidc/callback)")
    parser.add_argument("--oidc-client-secret-file", type=Path, metavar="PATH",
                        help="a file (0600) holding the service's client secret at the issuer")
    parser.add_argument("--token-audience", action="append", default=[], metavar="AUD",
                        help="an audience the runs' access tokens are for (repeatable: Rucio's, "
                             "the FTS service's, the storage's; default: rucio and "
                             "https://wlcg.cern.ch/jwt/v1/any)")
    parser.add_argument("--probe-x509-proxy", type=Path,
                        help="the storage credential the probes write with (an X.509 proxy "
                             "the storage and FTS accept; default: the Rucio configuration's "
                             "client_x509_proxy)")


def run(args: argparse.Namespace) -> int:
    from .researchers import hash_password

    if args.hash_password:
        print(hash_password(sys.stdin.readline().rstrip("\n")))
        return 0
    if args.researchers is None:
        raise ValueError("--researchers: the researchers file is needed to serve")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is None and args.host not in LOOPBACK:
        raise ValueError(f"--host {args.host}: logins would cross the network in clear; give "
                         "--tls-cert and --tls-key (plain HTTP only on 127.0.0.1)")
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import database, researchers, sandbox
    from .store import Store
    from .web import Context, create_app
    from .worker import Settings, Worker

    state = make_state(args.state.resolve())
    known = researchers.load(args.researchers)
    base, ca = rucio_servers(args)
    settings = Settings(state, known, load_sites(args.sites), base, ca,
                        max_attempts=args.max_attempts, probes=probe_settings(args, known, base),
                        private=private_files(args), issuer=token_issuer(args, known, ca))
    for directory in sandbox.grant_passage([Path(sys.executable), ROOT]):
        print(f"researchers' runs may pass through {directory} (search only, group "
              f"{sandbox.GROUP}), to reach the project and its Python", flush=True)
    check_containers(settings)
    provider = oidc_provider(args, known, ca)
    conninfo = (args.database or os.environ.get("LOFAR_DATALAKE_SERVICE_DATABASE")
                or database.start(state / "service" / "db"))
    for name in settings.researchers:
        sandbox.kill_leftovers(sandbox.PREFIX + name, state)
    store = Store(conninfo)
    store.migrate()
    for resumed in store.recover(args.max_attempts):
        print(f"submission {resumed.id} of {resumed.researcher}: {resumed.state.value} after "
              "the restart", flush=True)
    store.close()
    stop, lock = threading.Event(), threading.Lock()
    workers: list[threading.Thread] = [
        Worker(f"worker-{i}", lambda: Store(conninfo), settings, stop, lock)
        for i in range(args.workers)]
    for worker in workers:
        worker.start()
    if settings.probes is not None:
        from .health import Prober

        workers.append(Prober(lambda: Store(conninfo), settings, stop))
        workers[-1].start()
        print(f"probing every site's health every {settings.probes.interval_s} s as "
              f"{settings.probes.login}, writing with the X.509 proxy "
              f"{settings.probes.x509_proxy or '(none)'}", flush=True)
    else:
        print("no site-health probes (--probe not given, or --probe-interval 0): every site "
              "is offered", flush=True)
    app = create_app(Context(settings, conninfo, session_key(state), args.tls_cert is not None,
                             lock, provider))
    scheme = "https" if args.tls_cert else "http"
    print(f"serving on {scheme}://{args.host}:{args.port}/ (state {state})", flush=True)
    # uvicorn stops on SIGINT or SIGTERM, then raises the signal again under the handler it
    # found. Python's own would end the process there, before the runs and the database are
    # stopped below; these do nothing, so that uvicorn.run returns.
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                    ssl_keyfile=str(args.tls_key) if args.tls_key else None,
                    timeout_graceful_shutdown=GRACE_S)
    finally:
        for sig in STOP_SIGNALS:  # a second signal while stopping ends the process at once
            signal.signal(sig, signal.SIG_DFL)
        print("stopping: the runs in progress, then the database", flush=True)
        stop.set()
        for worker in workers:
            worker.join(60)
        if not args.database and not os.environ.get("LOFAR_DATALAKE_SERVICE_DATABASE"):
            database.stop(state / "service" / "db")
        print("stopped", flush=True)
    return 0


def private_files(args: argparse.Namespace) -> dict[str, Path]:
    """The service's files beyond its state, Rucio configuration and the researchers'
    credentials that no run may see (their directories are hidden: worker.Settings.walls)."""
    named = {"--researchers": args.researchers, "--tls-key": args.tls_key,
             "--oidc-client-secret-file": args.oidc_client_secret_file}
    return {option: path for option, path in named.items() if path is not None}


def check_containers(settings: Settings) -> None:
    """With root, every run is kept in a container: one is tried as a researcher's user before
    the service starts (a missing bwrap, or a kernel without user namespaces, stops it here),
    and what the containers hide is said. Without root, that runs are not isolated."""
    from . import sandbox

    if not sandbox.isolated():
        print("not root: researchers' runs run as the service's own user, without "
              "containers: they are not isolated from the service", flush=True)
        return
    walls = settings.walls
    user = sandbox.user_for(next(iter(settings.researchers)))
    sandbox.check(user, walls, settings.state / "runs")
    print("researchers' runs are kept in containers (bwrap) that do not show "
          f"{', '.join(str(p) for p in walls.hidden)}", flush=True)


def oidc_provider(args: argparse.Namespace, known: Mapping[str, Researcher],
                  ca: Path) -> Provider | None:
    """The OpenID issuer researchers may log in through, None without --oidc-issuer (then
    every researcher needs a password)."""
    from .oidc import CALLBACK, configure

    # --oidc-issuer alone serves the runs' access tokens (token_issuer), not logins.
    given = [o for o in ("oidc_client_id", "oidc_client_secret_file") if getattr(args, o)]
    if not given:
        stranded = sorted(name for name, r in known.items() if not r.password_hash)
        if stranded:
            raise ValueError(f"researchers {', '.join(stranded)} have no password_hash and "
                             "log in through the OpenID issuer: give --oidc-issuer, "
                             "--oidc-client-id and --oidc-client-secret-file")
        return None
    provider = configure(args.oidc_issuer, args.oidc_client_id, args.oidc_client_secret_file,
                         ca)
    print(f"logins through the OpenID issuer {provider.issuer} too, as its client "
          f"{provider.client_id} (redirect URI: this service's URL + {CALLBACK})", flush=True)
    return provider


def token_issuer(args: argparse.Namespace, known: Mapping[str, Researcher],
                 ca: Path) -> Issuer | None:
    """Where the runs of researchers with a token client get their access tokens (the
    --oidc-issuer's token endpoint, from its discovery document); None when nobody has one."""
    from .token_client import DEFAULT_AUDIENCES, discover

    clients = sorted(name for name, r in known.items() if r.token_client is not None)
    if not clients:
        return None
    if not args.oidc_issuer:
        raise ValueError(f"researchers {', '.join(clients)} have a token client: give "
                         "--oidc-issuer, the DataLake's issuer their runs' tokens come from")
    issuer = discover(args.oidc_issuer, ca, args.token_audience or DEFAULT_AUDIENCES)
    print(f"runs of {', '.join(clients)} get access tokens from {issuer.token_endpoint} for "
          f"{', '.join(issuer.audiences)}", flush=True)
    return issuer


def make_state(state: Path) -> Path:
    """The state directory: runs/ reachable by the researchers' users (each run directory is
    closed to all but its owner), service/ closed to everyone but the service."""
    for path, mode in ((state, 0o711), (state / "runs", 0o711), (state / "service", 0o700)):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
    return state


def session_key(state: Path) -> str:
    path = state / "service" / "session.key"
    if not path.exists():
        path.touch(0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_sites(path: Path) -> dict[str, SiteEntry]:
    from ..placement import sites as placement_sites
    from .worker import SiteEntry

    loaded = placement_sites.load(path)
    return {s.name: SiteEntry(s.name, (ROOT / s.profile).resolve(), s.rse, s.reads)
            for s in loaded.sites}


def rucio_servers(args: argparse.Namespace) -> tuple[Path, Path]:
    """The client configuration whose servers runs talk to, and the CA to trust."""
    config = args.rucio_config or (Path(os.environ["RUCIO_CONFIG"])
                                   if os.environ.get("RUCIO_CONFIG") else None)
    if config is None or not config.is_file():
        raise FileNotFoundError(f"--rucio-config: no Rucio client configuration at {config} "
                                "(give one, or set RUCIO_CONFIG)")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(config)
    ca = args.ca_bundle or Path(parsed.get("client", "ca_cert", fallback=""))
    if not ca.is_file():
        raise FileNotFoundError(f"--ca-bundle: no CA bundle at {ca}")
    return config, ca


def probe_settings(args: argparse.Namespace, known: Mapping[str, Researcher],
                   base: Path) -> ProbeSettings | None:
    """The probes' settings, None when no probes run; the login must be in the researchers
    file and the storage credential must exist."""
    from .model import ProbeSettings

    if not args.probe or args.probe_interval <= 0:
        return None
    if args.probe not in known:
        raise ValueError(f"--probe: {args.probe} is not in the researchers file (its logins: "
                         f"{', '.join(sorted(known))})")
    if args.probe_timeout <= 0:
        raise ValueError("--probe-timeout: must be at least 1 s")
    proxy = args.probe_x509_proxy
    if proxy is None:
        parsed = configparser.ConfigParser(interpolation=None)
        parsed.read(base)
        given = parsed.get("client", "client_x509_proxy", fallback="")
        proxy = Path(given) if given else None
    if proxy is not None and not proxy.is_file():
        raise FileNotFoundError(f"--probe-x509-proxy: no X.509 proxy at {proxy}")
    return ProbeSettings(args.probe, args.probe_interval, args.probe_timeout,
                         str(proxy.resolve()) if proxy else "")

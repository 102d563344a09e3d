"""Where the testbed keeps its state, and which loopback ports it uses.

Everything lives under one directory (default `.testbed/` in the project, or
`$LOFAR_DATALAKE_TESTBED_DIR`). Ports are chosen once, on the first `up`, and remembered so that
config files written then stay valid across restarts.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "LOFAR_DATALAKE_TESTBED_DIR"
LOOPBACK = "127.0.0.1"


WEBDAV = "webdav"
XROOTD = "xrootd"


@dataclass(frozen=True)
class Site:
    """One simulated site: an RSE with `file` and `https` access to the same directory, served
    by WsgiDAV, or by XRootD (`storage` xrootd: `root://` and XrdHttp's `https`)."""

    rse: str
    site: str
    prefer_https: bool  # a site whose users normally reach the storage over WebDAV
    # The storage's read policy: public (anyone may read over WebDAV) unless declared private,
    # when reads need the testbed CA's client certificate as writes always do.
    anonymous_read: bool = True
    storage: str = WEBDAV

    @property
    def https_port(self) -> str:
        """The name in `Layout.ports()` of the port its https (WebDAV) endpoint listens on."""
        return f"xrdhttp_{self.rse}" if self.storage == XROOTD else f"dav_{self.rse}"

    @property
    def port_names(self) -> list[str]:
        """Its storage's ports: XRootD's own protocol (`root://`) first where it has one."""
        return [f"xrd_{self.rse}", self.https_port] if self.storage == XROOTD else [self.https_port]

    def storage_urls(self, ports: dict[str, int]) -> list[str]:
        """Its storage's endpoints, `root://` first where it has one."""
        https = f"https://{LOOPBACK}:{ports[self.https_port]}"
        if self.storage == XROOTD:
            return [f"root://{LOOPBACK}:{ports[f'xrd_{self.rse}']}", https]
        return [https]


SITES: tuple[Site, ...] = (
    Site("SITE_A_DISK", "SITE_A", prefer_https=False),
    Site("SITE_B_DISK", "SITE_B", prefer_https=False),
    Site("SITE_C_DAV", "SITE_C", prefer_https=True),
    # The storage of the testbed's volunteered compute sites (`testbed up --sites ...`): the
    # Slurm cluster's RSE sits on its shared file system; the HTCondor pool's workers share no
    # file system with anything, so they reach their RSE over WebDAV.
    Site("SITE_SLURM_DISK", "SITE_SLURM", prefer_https=False),
    Site("SITE_HTCONDOR_DAV", "SITE_HTCONDOR", prefer_https=True),
    # Grid storage as most WLCG sites run it: XRootD, read over `root://` by preference.
    Site("SITE_D_XRD", "SITE_D", prefer_https=False, storage=XROOTD),
)


# The archive on tape (servers/tape.py): LTA_TAPE holds files nearline, behind one WebDAV
# endpoint that reads only what is pinned online; LTA_STAGING is Rucio's staging area on the same
# storage (same endpoint and paths), where a rule makes FTS recall the files.
TAPE_RSE = "LTA_TAPE"
STAGING_RSE = "LTA_STAGING"
TAPE_SITE = "LTA"
TAPE_PORT = f"dav_{TAPE_RSE}"


# The checkout this package is installed from (editable, as `make install` does):
# testbed/src/lofar_datalake_testbed/layout.py. The demo and the sites use its workflow.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def default_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).resolve()
    return (PROJECT_ROOT / ".testbed").resolve()


# Servers listen on ports below the kernel's ephemeral range: a port bind(0) hands out lies in
# that range, where any outgoing connection may take it as its local port before the server
# binds it ("Address already in use" at start, seen with several testbeds on one machine).
LISTEN_FLOOR = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(avoid: Collection[int] = ()) -> int:
    """A loopback port nothing is bound to, below the ephemeral range and not in `avoid`
    (ports handed out already but not yet bound); bind(0)'s where that range leaves no room."""
    top = _ephemeral_start()
    candidates = range(LISTEN_FLOOR, top) if top - LISTEN_FLOOR >= 1000 else range(0)
    for port in random.sample(candidates, min(200, len(candidates))):
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pgdata(self) -> Path:
        return self.root / "pg"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def fts_dir(self) -> Path:
        return self.root / "fts"

    @property
    def server_config(self) -> Path:
        """Server and daemon config, with the root account's credentials."""
        return self.etc / "rucio.cfg"

    @property
    def client_config(self) -> Path:
        """Client config for the pipeline's `lofar` account: what users point RUCIO_CONFIG at."""
        return self.etc / "rucio-client.cfg"

    @property
    def token_client_config(self) -> Path:
        """Client config for the `lofar` account in token mode: `auth_type = oidc`, no secret;
        the token comes from WLCG bearer-token discovery (`bearer_token`)."""
        return self.etc / "rucio-client-token.cfg"

    @property
    def bearer_token(self) -> Path:
        """The pipeline's current access token (0600), as an agent such as oidc-agent or
        htgettoken keeps one: what `BEARER_TOKEN_FILE` names in token mode."""
        return self.run / "bearer-token"

    @property
    def issuer_dir(self) -> Path:
        """The token issuer's clients and signing key (private)."""
        return self.etc / "issuer"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def rse_dir(self, rse: str) -> Path:
        return self.root / "rse" / rse

    def site_dir(self, kind: str) -> Path:
        """State of a compute site (`slurm`, `htcondor`) started with the testbed."""
        return self.root / "sites" / kind

    def make_dirs(self) -> None:
        for path in (self.root, self.etc, self.logs, self.run, self.fts_dir, self.issuer_dir):
            path.mkdir(parents=True, exist_ok=True)
        for path in (self.etc, self.issuer_dir):
            os.chmod(path, 0o700)
        # Traversable, not listable: the embedded PostgreSQL runs as a user of its own and
        # opens its files by absolute paths below the root. A root closed to it (0700) kills
        # the running database at its next checkpoint ("could not open file
        # .../global/pg_control: Permission denied"); XRootD did that (see xrootd.admin_dir).
        # The secrets live in etc/ and pki/.
        os.chmod(self.root, 0o711)  # noqa: S103 (traverse only; see above)
        for rse in [*(site.rse for site in SITES), TAPE_RSE]:
            self.rse_dir(rse).mkdir(parents=True, exist_ok=True)

    def load_state(self) -> dict[str, object]:
        if not self.state_file.exists():
            return {}
        return dict(json.loads(self.state_file.read_text()))

    def save_state(self, state: dict[str, object]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    def ports(self) -> dict[str, int]:
        """The testbed's ports, allocated on first use and then fixed."""
        state = self.load_state()
        ports = dict(state.get("ports", {}))  # type: ignore[call-overload]
        wanted = ["rucio", "fts", "issuer", "broker", TAPE_PORT]
        wanted += [name for site in SITES for name in site.port_names]
        changed = False
        for name in wanted:
            if name not in ports:
                ports[name] = free_port(avoid=set(ports.values()))
                changed = True
        if changed:
            state["ports"] = ports
            self.save_state(state)
        return {str(k): int(v) for k, v in ports.items()}

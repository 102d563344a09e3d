"""XRootD storage for a testbed RSE (`layout.Site` with `storage=xrootd`): its configuration,
written under `<state>/etc/xrootd/<RSE>/`, and the command that runs it.

One `xrootd` 5.5 process (Debian's `xrootd-server`) exports the RSE's directory over XRootD's
own protocol (`root://127.0.0.1:<xrd port>/`) and over HTTPS through XrdHttp (TLS with the
testbed's server certificate). It computes adler32 itself (`xrootd.chksum`): `xrdfs query
checksum` and HTTP `Want-Digest: adler32` answer from the server's disk.

Access, as production storage sets it, with what XRootD 5.5 offers (it has no optional
authentication: binding `host` switches every other protocol off, and its authorization
database cannot tell protocols apart, only names):
- writing needs the pipeline's X.509 certificate from the testbed CA: `gsi` on `root://`, the
  TLS client certificate on https; a grid-mapfile maps its DN to the name the authorization
  database grants `a`ll to. That name contains a space (`acc.spacechar`), which XRootD's
  `unix` protocol cannot carry, so no client can claim it without the certificate;
- reading is anonymous where the site's policy says so: `unix` (an unverified name, like
  anonymous https) gets read and lookup on everything, nothing else.
Tokens are not accepted here yet. Debian 12 ships what it takes (`ztn` in xrootd-plugins,
libXrdAccSciTokens in xrootd-scitokens-plugins), but the SciTokens library fetches the issuer's
keys over TLS itself, and making it trust the testbed's CA was not tried; so in token mode a
client reads this RSE anonymously and cannot write to it.

xrootd refuses to run as root; started as root it runs in a user namespace where the testbed's
root is an ordinary user (uid 65000 inside), so it reads its 0600 key and the RSE directory
as the other servers do, and what it writes belongs to root outside. XRootD 5.5 has no bind
address: it listens on sockets bound to 127.0.0.1 that `servers/listen.py` hands it as systemd
would (otherwise it binds every address); `xrd.allow` accepts connections from 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509

from .layout import LOOPBACK, Layout, Site
from .pki import Pki

# The name the pipeline's certificate maps to. Its space keeps it out of reach of `unix`.
WRITER = "lofar writer"
SPACE = "_"  # how the authorization database spells that space
NAMESPACE_UID = 65000


def config_dir(layout: Layout, site: Site) -> Path:
    return layout.etc / "xrootd" / site.rse


def admin_dir(layout: Layout, site: Site) -> Path:
    """XRootD's admin, pid and home directory, outside the testbed's state tree: XRootD makes
    that path with `chmod 0700` on every directory along it, up to the one below the system's
    temporary directory. Under the state directory that closed the state directory (and its
    parent) to the embedded PostgreSQL, which runs as a user of its own and opens its files by
    absolute path: the database died at its next checkpoint ("could not open file
    .../global/pg_control: Permission denied"). Here XRootD closes only this directory."""
    return _admin_root(layout) / site.rse


def remove_admin_dirs(layout: Layout) -> None:
    """After the servers stopped (`testbed down`)."""
    shutil.rmtree(_admin_root(layout), ignore_errors=True)


def _admin_root(layout: Layout) -> Path:
    tag = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"lofar-datalake-xrd-{tag}"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Like the testbed's other configuration: readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def root_url(ports: dict[str, int], site: Site) -> str:
    return site.storage_urls(ports)[0]


def https_url(ports: dict[str, int], site: Site) -> str:
    return site.storage_urls(ports)[-1]


def grid_dn(cert_pem: Path) -> str:
    """A certificate's subject as grid tools write it: `/O=.../CN=...`, in the order it has."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    parts = [(a.rfc4514_attribute_name, a.value) for rdn in cert.subject.rdns for a in rdn]
    return "".join(f"/{name}={v if isinstance(v, str) else v.decode()}" for name, v in parts)


def ca_dir(pki: Pki, directory: Path) -> Path:
    """The testbed CA under its OpenSSL subject hash: the trust directory XRootD's gsi and TLS
    read (X509_CERT_DIR for its clients too)."""
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca_cert)],
                                  capture_output=True, text=True, check=True).stdout.strip()
    _write_private(_private_dir(directory) / f"{subject_hash}.0", pki.ca_cert.read_text())
    return directory


def write_config(layout: Layout, site: Site, ports: dict[str, int], pki: Pki) -> Path:
    """The server's configuration, grid-mapfile, authorization database and CA directory."""
    _private_dir(config_dir(layout, site).parent)
    etc = _private_dir(config_dir(layout, site))
    admin = admin_dir(layout, site)
    admin.mkdir(mode=0o700, parents=True, exist_ok=True)
    cadir = ca_dir(pki, etc / "certificates")
    gridmap = etc / "grid-mapfile"
    _write_private(gridmap, f'"{grid_dn(pki.proxy)}" {WRITER}\n')
    rights = [f"u {WRITER.replace(' ', SPACE)} / a"]
    if site.anonymous_read:
        rights.append("u * / rl")
    authdb = etc / "authdb"
    _write_private(authdb, "\n".join(rights) + "\n")
    cert, key = pki.server_cert, pki.server_key
    lines = [
        "all.export /",
        f"oss.localroot {layout.rse_dir(site.rse)}",
        f"all.adminpath {admin}",
        f"all.pidpath {admin}",
        f"xrd.homepath {admin}",  # its working directory (else <cwd>/<RSE>)
        f"xrd.port {ports[f'xrd_{site.rse}']}",
        "xrd.network nodnr",
        "xrd.allow host localhost",
        f"xrd.allow host {LOOPBACK}",
        "xrootd.chksum adler32",
        f"xrd.tls {cert} {key}",
        f"xrd.tlsca certdir {cadir}",
        f"xrd.protocol XrdHttp:{ports[site.https_port]} libXrdHttp.so",
        f"http.gridmap {gridmap}",
        "xrootd.seclib libXrdSec.so",
        # gmapopt 2: a certificate whose DN is not in the map is refused.
        f"sec.protocol gsi -certdir:{cadir} -cert:{cert} -key:{key} -gridmap:{gridmap} "
        "-gmapopt:2 -crl:0 -vomsat:0 -dlgpxy:0",
        "sec.protocol unix",
        "sec.protbind * gsi unix",
        "ofs.authorize",
        f"acc.authdb {authdb}",
        f"acc.spacechar {SPACE}",
        "acc.audit deny",
    ]
    path = etc / "xrootd.cfg"
    _write_private(path, "\n".join(lines) + "\n")
    return path


def argv(listen: list[str], config: Path, site: Site, ports: dict[str, int]) -> list[str]:
    """The command that runs the server, behind `listen` (servers/listen.py, which hands it its
    sockets on 127.0.0.1), in a user namespace when started as root."""
    command = ["xrootd", "-c", str(config), "-n", site.rse]
    if os.geteuid() == 0:
        command = ["unshare", "--user", f"--map-user={NAMESPACE_UID}",
                   f"--map-group={NAMESPACE_UID}", "--", *command]
    return [*listen, *(f"--port={ports[name]}" for name in site.port_names), "--", *command]


def client_env(pki: Pki, cadir: Path) -> dict[str, str]:
    """What XRootD's clients (xrdcp, xrdfs) need to write here with the pipeline's certificate:
    gsi with a plain certificate (not an RFC 3820 proxy, which it would try to make), the CA
    directory, and the server's name: its certificate's CN is `localhost`, and gsi in 5.5
    compares the CN, not the IP address in its subjectAltName, with the host in the URL."""
    return {"X509_USER_CERT": str(pki.proxy), "X509_USER_KEY": str(pki.proxy),
            "X509_USER_PROXY": str(pki.proxy.with_name("no-proxy")),
            "XrdSecGSICREATEPROXY": "0", "X509_CERT_DIR": str(cadir),
            "XrdSecGSISRVNAMES": "localhost"}

#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those that are missing.
# swig + libssl-dev + gcc: pip builds M2Crypto (needed by the fts3 client) from source.
# python3-venv / python3-dev: the project's virtual environment and compiled wheels.
# wsclean: the imager (Debian 3.1); DP3, AOFlagger, casacore and PyBDSF come from PyPI wheels.
# gfal2 + plugins (file, http/https/davs, root) + python3-gfal2: the testbed's FTS service moves
# bytes with gfal2 as FTS does, one /usr/bin/python3 helper per copy (python3-gfal2 is built for
# Debian's python3 only; openssl hashes the CA directory gfal2 trusts).
# xrootd-server + xrootd-server-plugins (XrdHttp) + xrootd-plugins (gsi, unix): the testbed's
# XRootD RSE; xrootd-client (xrdcp, xrdfs, xrdadler32) + xrootd-client-plugins: how the plugin
# reads root:// replicas.
# acl (setfacl): `lofar-datalake serve` lets the researchers' users pass through the directories
# above the project's Python (e.g. pyenv's under a 0700 /root), search permission only; git:
# it checks out the workflows researchers submit as a repository at a commit; bubblewrap (bwrap):
# it runs every researcher's code in a container of its own (service/sandbox.py).
set -euo pipefail

PACKAGES=(swig libssl-dev gcc make python3-venv python3-dev wsclean openssl acl git bubblewrap
    gfal2 gfal2-plugin-file gfal2-plugin-http gfal2-plugin-xrootd python3-gfal2
    xrootd-server xrootd-server-plugins xrootd-plugins xrootd-client xrootd-client-plugins)
# --tests: what the test suite needs besides: a one-node Slurm cluster (slurm-wlm + munge) and
# iproute2/util-linux for the private network namespace it runs in; debootstrap to build the
# stage images (and the HTCondor pool's root); podman + runc to run the images in place of
# Apptainer, which no reachable registry offers (tests/launchers/apptainer); chromium: the
# headless browser the page tests look at report.html in (tests/browser.py, Playwright driving
# Debian's build: Playwright's own browser download is not reachable).
if [ "${1:-}" = "--tests" ]; then
    PACKAGES+=(slurm-wlm munge iproute2 util-linux debootstrap podman runc chromium)
fi
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
# A Python 3.11 that is not Debian's own (e.g. pyenv) brings venv and headers itself.
if [ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import venv, sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' 2>/dev/null; then
    filtered=()
    for pkg in "${missing[@]}"; do
        case "$pkg" in python3-venv|python3-dev) ;; *) filtered+=("$pkg") ;; esac
    done
    missing=("${filtered[@]}")
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "       run as root, or ask an administrator: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

"""`lofar-datalake testbed up|status|down|env|token|seed|exec`: the local DataLake and its sites."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from .layout import TAPE_RSE
from .orchestrator import Testbed, testbed

HELP = "the local DataLake: Rucio, PostgreSQL, WebDAV, FTS (and compute sites)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=["up", "status", "down", "env", "token", "seed", "exec"]
    )
    parser.add_argument(
        "path",
        nargs="?",
        help="seed: directory with L*_SB*_uv.MS.tar; exec: the site (slurm or htcondor)",
    )
    parser.add_argument(
        "--sites",
        default=None,
        help="up: also start these compute sites, comma-separated (slurm, htcondor); they "
        "stay up with the testbed until `down`",
    )
    parser.add_argument(
        "--auth",
        choices=["userpass", "token"],
        default=None,
        help="up: how the testbed's clients (the demo, `testbed env`, the sites) authenticate: "
        "the account's password, or WLCG bearer tokens from the testbed's issuer (default: "
        "as the last `up`, first userpass)",
    )
    parser.add_argument(
        "--cwd", type=Path, default=None, help="exec: directory to run the command in"
    )
    parser.add_argument(
        "--rses",
        default="SITE_B_DISK,SITE_C_DAV",
        help="seed: RSEs to spread the archives over, comma-separated",
    )
    parser.add_argument(
        "--tape",
        action="store_true",
        help="seed: put the archives on tape, their only replicas on LTA_TAPE (nearline until "
        "recalled, e.g. by a rule with a lifetime on LTA_STAGING)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="state directory (default: $LOFAR_DATALAKE_TESTBED_DIR or ./.testbed)",
    )


def run(args: argparse.Namespace) -> int:
    bed = testbed(args.dir)
    if args.action == "up":
        from .sites import parse_kinds

        bed.up(parse_kinds(args.sites or ""), auth=args.auth)
        return 0
    if args.action == "token":
        return _token(bed)
    if args.action == "exec":
        return _exec(bed, args)
    if args.action == "status":
        return 0 if bed.status() else 1
    if args.action == "down":
        bed.down()
        return 0
    if args.action == "seed":
        from .seed import seed

        if args.path is None:
            raise FileNotFoundError("testbed seed needs the directory holding the archives")
        seed(bed, Path(args.path), rses=[TAPE_RSE] if args.tape else args.rses.split(","))
        return 0
    print(bed.env())
    return 0


def _token(bed: Testbed) -> int:
    """What an agent (oidc-agent, htgettoken) does: a fresh token into the bearer-token file."""
    import time

    from .tokens import refresh_bearer_token

    path, expires = refresh_bearer_token(bed.layout, bed.pki.ca_cert)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
    print(f"a fresh token for the pipeline is in {path} (BEARER_TOKEN_FILE), valid until {stamp}")
    return 0


def _exec(bed: Testbed, args: argparse.Namespace) -> int:
    """Run a command on a testbed site's access point: `testbed exec slurm -- sbatch ...`."""
    from .sites import compute_site, parse_kinds, started_kinds

    kinds = parse_kinds(str(args.path or ""))
    if len(kinds) != 1 or not args.snakemake_args:
        raise ValueError("usage: lofar-datalake testbed exec slurm|htcondor [--cwd DIR] -- CMD ...")
    if kinds[0] not in started_kinds(bed.layout):
        raise RuntimeError(
            f"site {kinds[0]} is not up: lofar-datalake testbed up --sites {kinds[0]}"
        )
    site = compute_site(bed.layout, kinds[0])
    cwd = (args.cwd or Path.cwd()).resolve()
    # The site's DataLake client setup and the paths its profile names (no secrets: those
    # stay in the files these name).
    client = site.client_env()
    prefix = site.exec_prefix(cwd, client)
    return subprocess.run([*prefix, *args.snakemake_args], env={**os.environ, **client}).returncode

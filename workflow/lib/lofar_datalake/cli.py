"""The `lofar-datalake` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _testbed_command(args: argparse.Namespace) -> int:
    from .testbed.orchestrator import testbed

    bed = testbed(args.dir)
    if args.action == "up":
        from .testbed.sites import parse_kinds

        bed.up(parse_kinds(args.sites or ""))
        return 0
    if args.action == "exec":
        return _testbed_exec(bed, args)
    if args.action == "status":
        return 0 if bed.status() else 1
    if args.action == "down":
        bed.down()
        return 0
    if args.action == "seed":
        from .testbed.seed import seed

        if args.path is None:
            raise FileNotFoundError("testbed seed needs the directory holding the archives")
        seed(bed, Path(args.path), rses=args.rses.split(","))
        return 0
    print(bed.env())
    return 0


def _testbed_exec(bed: object, args: argparse.Namespace) -> int:
    """Run a command on a testbed site's access point: `testbed exec slurm -- sbatch ...`."""
    import os
    import subprocess

    from .testbed.sites import compute_site, parse_kinds, started_kinds

    layout = bed.layout  # type: ignore[attr-defined]
    kinds = parse_kinds(str(args.path or ""))
    if len(kinds) != 1 or not args.snakemake_args:
        raise ValueError("usage: lofar-datalake testbed exec slurm|htcondor [--cwd DIR] -- CMD ...")
    if kinds[0] not in started_kinds(layout):
        raise RuntimeError(
            f"site {kinds[0]} is not up: lofar-datalake testbed up --sites {kinds[0]}"
        )
    site = compute_site(layout, kinds[0])
    cwd = (args.cwd or Path.cwd()).resolve()
    # The site's DataLake client setup and the paths its profile names (no secrets: those
    # stay in the files these name).
    client = site.client_env()
    prefix = site.exec_prefix(cwd, client)
    return subprocess.run([*prefix, *args.snakemake_args], env={**os.environ, **client}).returncode


def _demo_command(args: argparse.Namespace) -> int:
    if args.transfers_only:
        from .demo import run_demo

        return run_demo(args.dir)
    from .demo_pipeline import run_pipeline_demo

    return run_pipeline_demo(args.dir)


def _simulate_command(args: argparse.Namespace) -> int:
    from .simulate.cli import run_simulate

    return run_simulate(args)


def _containers_command(args: argparse.Namespace) -> int:
    from .containers_cli import run_containers

    return run_containers(args)


def _compare_command(args: argparse.Namespace) -> int:
    from .compare.command import main

    return main(args)


def _reproduce_command(args: argparse.Namespace) -> int:
    from .provenance.reproduce import main

    return main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lofar-datalake",
        description="LOFAR imaging on Rucio/FTS DataLake data, and a local DataLake to run it on.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tb = sub.add_parser("testbed", help="the local DataLake: Rucio, PostgreSQL, WebDAV, FTS")
    tb.add_argument("action", choices=["up", "status", "down", "env", "seed", "exec"])
    tb.add_argument(
        "path",
        nargs="?",
        help="seed: directory with L*_SB*_uv.MS.tar; exec: the site (slurm or htcondor)",
    )
    tb.add_argument(
        "--sites",
        default=None,
        help="up: also start these compute sites, comma-separated (slurm, htcondor); they "
        "stay up with the testbed until `down`",
    )
    tb.add_argument("--cwd", type=Path, default=None, help="exec: directory to run the command in")
    tb.add_argument(
        "--rses",
        default="SITE_B_DISK,SITE_C_DAV",
        help="seed: RSEs to spread the archives over, comma-separated",
    )
    tb.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="state directory (default: $LOFAR_DATALAKE_TESTBED_DIR or ./.testbed)",
    )
    tb.set_defaults(func=_testbed_command)

    demo = sub.add_parser("demo", help="run the LOFAR pipeline on the local DataLake")
    demo.add_argument("--dir", type=Path, default=None, help="testbed state directory")
    demo.add_argument(
        "--transfers-only",
        action="store_true",
        help="only show upload, replication by rules and download of one file",
    )
    demo.set_defaults(func=_demo_command)

    from .simulate.cli import add_arguments

    sim = sub.add_parser("simulate", help="write a simulated LOFAR observation with known truth")
    add_arguments(sim)
    sim.set_defaults(func=_simulate_command)

    from .containers_cli import add_arguments as add_containers_arguments

    cont = sub.add_parser("containers", help="the pipeline's container images and their recipes")
    add_containers_arguments(cont)
    cont.set_defaults(func=_containers_command)

    from .compare.command import add_arguments as add_compare_arguments

    comp = sub.add_parser(
        "compare",
        help="run a workflow on DataLake data and on a local copy; are the products equivalent?",
    )
    add_compare_arguments(comp)
    comp.set_defaults(func=_compare_command)

    from .provenance.reproduce import add_arguments as add_reproduce_arguments

    rep = sub.add_parser(
        "reproduce", help="re-run a pipeline run from its provenance manifest and compare"
    )
    add_reproduce_arguments(rep)
    rep.set_defaults(func=_reproduce_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to Snakemake untouched (compare, reproduce).
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.snakemake_args = passthrough
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `lofar-datalake` command."""

from __future__ import annotations

import argparse
import sys


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
        description="LOFAR imaging on Rucio/FTS DataLake data (with lofar-datalake-testbed: "
        "a local DataLake to run it on).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    from .placement import command as plan_command

    plan = sub.add_parser("plan", help=plan_command.HELP)
    plan_command.add_arguments(plan)
    plan.set_defaults(func=plan_command.run)

    from .placement import run_command

    chain_run = sub.add_parser("run", help=run_command.HELP)
    run_command.add_arguments(chain_run)
    chain_run.set_defaults(func=run_command.run)

    from .service import command as serve_command

    serve = sub.add_parser("serve", help=serve_command.HELP)
    serve_command.add_arguments(serve)
    serve.set_defaults(func=serve_command.run)
    _add_registered_commands(sub)
    return parser


def _add_registered_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands other distributions add (the testbed's `testbed` and `demo`)."""
    from . import extensions

    for name, entry in sorted(extensions.registered(extensions.COMMANDS).items()):
        module = entry.load()
        parser = sub.add_parser(name, help=module.HELP)
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)


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

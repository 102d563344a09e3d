"""The `lofar-datalake` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _testbed_command(args: argparse.Namespace) -> int:
    from .testbed.orchestrator import testbed

    bed = testbed(args.dir)
    if args.action == "up":
        bed.up()
        return 0
    if args.action == "status":
        return 0 if bed.status() else 1
    if args.action == "down":
        bed.down()
        return 0
    print(bed.env())
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lofar-datalake",
        description="LOFAR imaging on Rucio/FTS DataLake data, and a local DataLake to run it on.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tb = sub.add_parser("testbed", help="the local DataLake: Rucio, PostgreSQL, WebDAV, FTS")
    tb.add_argument("action", choices=["up", "status", "down", "env"])
    tb.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="state directory (default: $LOFAR_DATALAKE_TESTBED_DIR or ./.testbed)",
    )
    tb.set_defaults(func=_testbed_command)

    demo = sub.add_parser("demo", help="run the demonstration on the local DataLake")
    demo.add_argument("--dir", type=Path, default=None, help="testbed state directory")
    demo.set_defaults(func=_demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

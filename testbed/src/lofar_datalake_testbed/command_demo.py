"""`lofar-datalake demo`: the LOFAR pipeline on the local DataLake (or only its transfers)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the LOFAR pipeline on the local DataLake"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="testbed state directory")
    parser.add_argument(
        "--transfers-only",
        action="store_true",
        help="only show upload, replication by rules and download of one file",
    )
    parser.add_argument(
        "--from-tape",
        action="store_true",
        help="the observation on the tape RSE only: recalled through Rucio and FTS as jobs "
        "need it",
    )
    parser.add_argument(
        "--linc",
        action="store_true",
        help="8 subbands over 120-180 MHz calibrated as LOFAR's LINC pipeline does (bandpass, "
        "clocks and TEC from the calibrator, target self-calibration); prints their scores",
    )


def run(args: argparse.Namespace) -> int:
    if args.transfers_only:
        from .demo.transfers import run_demo

        return run_demo(args.dir)
    from .demo.pipeline import run_pipeline_demo

    return run_pipeline_demo(args.dir, from_tape=args.from_tape, linc=args.linc)

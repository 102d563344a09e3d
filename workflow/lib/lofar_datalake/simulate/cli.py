"""Arguments of `lofar-datalake simulate` (kept light: imported whenever the CLI starts)."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=1, help="seed of gains, noise and RFI")
    parser.add_argument("--sky-seed", type=int, default=1, help="seed of the target field")
    parser.add_argument("--n-sources", type=int, default=8, help="sources in the target field")
    parser.add_argument("--subbands", type=int, default=1, help="number of subbands")
    parser.add_argument("--channels", type=int, default=64, help="channels per subband")
    parser.add_argument("--hours", type=float, default=8.0, help="length of the track")
    parser.add_argument("--interval", type=float, default=60.0, help="integration time (s)")
    parser.add_argument(
        "--stations", default=None, help="comma-separated HBA station names (default: 12)"
    )
    parser.add_argument("--rfi", type=float, default=0.025, help="fraction of the data hit by RFI")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other SimulationParams field, e.g. --set target_dec_deg=60",
    )


def run_simulate(args: argparse.Namespace) -> int:
    from .observation import SimulationParams, simulate

    params = SimulationParams(
        seed=args.seed,
        sky_seed=args.sky_seed,
        n_sources=args.n_sources,
        n_subbands=args.subbands,
        n_channels=args.channels,
        duration_h=args.hours,
        interval_s=args.interval,
        rfi_occupancy=args.rfi,
    )
    if args.stations:
        params.stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    types = {f.name: f.type for f in fields(SimulationParams)}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in types:
            print(f"error: --set {name}: not a simulation parameter")
            return 2
        current = getattr(params, name)
        if isinstance(current, tuple):
            setattr(params, name, tuple(float(v) for v in value.split(",")))
        else:
            setattr(params, name, type(current)(value))
    start = time.monotonic()
    out = simulate(params, args.out)
    print(f"simulated {params.n_subbands} subband(s) of 2 beams in {out} "
          f"({time.monotonic() - start:.1f} s)")  # fmt: skip
    return 0

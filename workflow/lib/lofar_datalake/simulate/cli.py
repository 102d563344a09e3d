"""Arguments of `lofar-datalake simulate` (kept light: imported whenever the CLI starts)."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=1, help="seed of the corruptions")
    parser.add_argument("--sky-seed", type=int, default=1, help="seed of the target field")
    parser.add_argument("--n-sources", type=int, default=8, help="sources in the target field")
    parser.add_argument("--subbands", type=int, default=1, help="number of subbands")
    parser.add_argument(
        "--band",
        metavar="LO-HI",
        help="spread the subbands evenly over this band in MHz, e.g. 120-180 "
        "(default: consecutive subbands from 150 MHz)",
    )
    parser.add_argument("--channels", type=int, default=64, help="channels per subband")
    parser.add_argument("--hours", type=float, default=8.0, help="length of the track")
    parser.add_argument("--interval", type=float, default=60.0, help="integration time (s)")
    parser.add_argument(
        "--stations", default=None, help="comma-separated HBA station names (default: 12)"
    )
    parser.add_argument("--rfi", type=float, default=0.025, help="fraction of the data hit by RFI")
    parser.add_argument(
        "--bandpass",
        type=float,
        default=0.0,
        metavar="RIPPLE",
        help="station bandpasses with this peak fractional ripple, e.g. 0.15 (default: flat)",
    )
    parser.add_argument(
        "--clock-rms-ns", type=float, default=0.0, help="station clock offsets (ns rms), e.g. 10"
    )
    parser.add_argument(
        "--tec-rms", type=float, default=0.0, help="differential TEC (TECU rms), e.g. 0.05"
    )
    parser.add_argument(
        "--target-tec-rms",
        type=float,
        default=0.0,
        help="TEC (TECU rms) the target's direction adds to the calibrator's, e.g. 0.01",
    )
    parser.add_argument(
        "--bandpass-phase",
        type=float,
        default=None,
        metavar="RAD",
        help="peak phase ripple of the bandpasses (default: RIPPLE rad)",
    )
    parser.add_argument(
        "--no-gain-phases",
        action="store_true",
        help="drifting gains change amplitude only: a station's phase is its clock alone",
    )
    parser.add_argument(
        "--station-beam",
        action="store_true",
        help="LOFAR's station beam (EveryBeam) on every source, and the beam tables in each MS",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other SimulationParams field, e.g. --set target_dec_deg=60",
    )


def _band_hz(text: str) -> tuple[float, float]:
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError("expected LO-HI in MHz, e.g. 120-180")
    return float(parts[0]) * 1e6, float(parts[1]) * 1e6


def run_simulate(args: argparse.Namespace) -> int:
    from .observation import SimulationParams, simulate, subbands_across

    params = SimulationParams(
        seed=args.seed,
        sky_seed=args.sky_seed,
        n_sources=args.n_sources,
        n_subbands=args.subbands,
        n_channels=args.channels,
        duration_h=args.hours,
        interval_s=args.interval,
        rfi_occupancy=args.rfi,
        bandpass_ripple=args.bandpass,
        clock_rms_ns=args.clock_rms_ns,
        tec_rms=args.tec_rms,
        target_tec_rms=args.target_tec_rms,
        bandpass_phase_rad=args.bandpass_phase,
        gain_phases=not args.no_gain_phases,
        station_beam=args.station_beam,
    )
    if args.band:
        try:
            lo, hi = _band_hz(args.band)
            params.first_subband, params.subband_step = subbands_across(lo, hi, args.subbands)
        except ValueError as exc:
            print(f"error: --band {args.band}: {exc}")
            return 2
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
        elif isinstance(current, bool):  # bool("false") is True
            if value.lower() not in ("true", "false"):
                print(f"error: --set {name}: expected true or false")
                return 2
            setattr(params, name, value.lower() == "true")
        elif current is None:
            setattr(params, name, float(value))
        else:
            setattr(params, name, type(current)(value))
    start = time.monotonic()
    try:
        out = simulate(params, args.out)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    print(f"simulated {params.n_subbands} subband(s) of 2 beams in {out} "
          f"({time.monotonic() - start:.1f} s)")  # fmt: skip
    return 0

"""One function per processing stage: what a rule's script calls with its inputs and outputs.

The QA stages are in `qa`; each job imports only what its stage needs, as the plotting and
table libraries take seconds to import.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import imaging, parsets, tools
from .unpack import unpack_ms


def _fresh(path: Path) -> None:
    """Remove a directory output left by an earlier, failed attempt (DP3 will not overwrite)."""
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)


def fetch(archive: Path, ms: Path, log: Path) -> None:
    unpack_ms(archive, ms)
    with log.open("a") as fh:
        fh.write(f"unpacked {archive} -> {ms}\n")


def flag(
    msin: Path, msout: Path, strategy: Path, preflag: dict[str, Any], threads: int, log: Path
) -> None:
    _fresh(msout)
    parset = parsets.flag_parset(msin, msout, strategy, preflag, threads)
    tools.run_dp3(parset, log.with_suffix(".parset"), log)


def average(msin: Path, msout: Path, freqstep: int, timestep: int, log: Path) -> None:
    _fresh(msout)
    parset = parsets.average_parset(msin, msout, freqstep, timestep)
    tools.run_dp3(parset, log.with_suffix(".parset"), log)


def calibrate(
    ms: Path, skymodel: Path, h5parm: Path, settings: dict[str, Any], threads: int, log: Path
) -> None:
    h5parm.parent.mkdir(parents=True, exist_ok=True)
    h5parm.unlink(missing_ok=True)  # DDECal refuses to overwrite a solution table
    parset = parsets.calibrate_parset(ms, h5parm, skymodel, settings, threads)
    tools.run_dp3(parset, log.with_suffix(".parset"), log)


def apply_solutions(msin: Path, h5parm: Path, msout: Path, log: Path, beam: bool = False) -> None:
    _fresh(msout)
    parset = parsets.applycal_parset(msin, msout, h5parm, beam=beam)
    tools.run_dp3(parset, log.with_suffix(".parset"), log)


def self_calibrate(
    msin: Path, skymodel: Path, h5parm: Path, msout: Path, settings: dict[str, Any],
    threads: int, log: Path,
) -> None:  # fmt: skip
    """Phase-only DDECal against the target's own sky model, then its phases applied."""
    h5parm.parent.mkdir(parents=True, exist_ok=True)
    h5parm.unlink(missing_ok=True)
    solve = parsets.selfcal_parset(msin, h5parm, skymodel, settings, threads)
    tools.run_dp3(solve, log.with_suffix(".solve.parset"), log)
    _fresh(msout)
    apply = parsets.applycal_parset(msin, msout, h5parm, phase_only=True)
    tools.run_dp3(apply, log.with_suffix(".apply.parset"), log)


def transfer_solutions(
    h5parms: Sequence[Path], h5parm: Path, summary: Path, log: Path
) -> None:
    from .calibrator_transfer import transfer_solutions as reduce_and_write

    transfer = reduce_and_write(list(h5parms), h5parm, summary)
    clocks = ", ".join(f"{c:.2f}" for c in transfer.fit.clock_ns)
    with log.open("a") as fh:
        fh.write(f"{len(h5parms)} subbands, {transfer.cube.freqs.size} channels; "
                 f"clocks (ns): {clocks}\n")  # fmt: skip


def image(
    measurement_sets: Sequence[Path],
    outputs: dict[str, Path],
    settings: dict[str, Any],
    threads: int,
    log: Path,
) -> None:
    """WSClean into a scratch prefix, then move the products to their declared paths."""
    scratch = outputs["image"].parent / ".wsclean"
    _fresh(scratch)
    scratch.mkdir()
    prefix = scratch / "img"
    args = imaging.wsclean_args(measurement_sets, prefix, settings, threads, scratch)
    tools.run_wsclean(args, log)
    for product, dest in outputs.items():
        shutil.move(f"{prefix}-{product}.fits", dest)
    shutil.rmtree(scratch)


def source_finding(
    image_fits: Path, outputs: dict[str, Path], settings: dict[str, Any], log: Path
) -> None:
    from .catalogue import find_sources

    find_sources(image_fits, outputs["fits"], outputs["csv"], outputs["skymodel"], log, settings)

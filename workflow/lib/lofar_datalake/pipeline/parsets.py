"""DP3 parsets for the flag, average, calibrate, self-calibrate and apply stages (pure
functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Parset = dict[str, object]


def _io(msin: Path, msout: Path | str, threads: int = 1) -> Parset:
    return {
        "numthreads": threads,
        "msin": str(msin),
        "msin.datacolumn": "DATA",
        "msout": str(msout),
        "msout.overwrite": True,
    }


def flag_parset(
    msin: Path, msout: Path, strategy: Path, preflag: dict[str, Any], threads: int = 1
) -> Parset:
    """Preflagger steps, then AOFlagger with `strategy`.

    One preflagger step per criterion: within one step DP3 flags the AND of its criteria, and
    autocorrelations, fixed channels and bad baselines are separate reasons to flag.
    """
    criteria: dict[str, tuple[str, object]] = {}
    if preflag.get("autocorrelations", True):
        criteria["flagauto"] = ("corrtype", "auto")
    if preflag.get("channels"):
        criteria["flagchan"] = ("chan", [str(c) for c in preflag["channels"]])
    if preflag.get("baseline"):
        criteria["flagbl"] = ("baseline", preflag["baseline"])
    parset = _io(msin, msout, threads) | {"steps": [*criteria, "aoflag"]}
    for step, (key, value) in criteria.items():
        parset[f"{step}.type"] = "preflagger"
        parset[f"{step}.{key}"] = value
    parset |= {"aoflag.type": "aoflagger", "aoflag.strategy": str(strategy)}
    return parset


def average_parset(msin: Path, msout: Path, freqstep: int, timestep: int) -> Parset:
    return _io(msin, msout) | {
        "steps": ["avg"],
        "avg.type": "averager",
        "avg.freqstep": freqstep,
        "avg.timestep": timestep,
    }


def calibrate_parset(
    msin: Path, h5parm: Path, skymodel: Path, settings: dict[str, Any], threads: int = 1
) -> Parset:
    """DDECal against the calibrator's sky model; only the solutions are kept (no output MS)."""
    return {
        "numthreads": threads,
        "msin": str(msin),
        "msin.datacolumn": "DATA",
        "msout": "",
        "steps": ["cal"],
        "cal.type": "ddecal",
        "cal.sourcedb": str(skymodel),
        "cal.h5parm": str(h5parm),
        "cal.mode": settings.get("mode", "diagonal"),
        "cal.solint": settings.get("solint", 1),
        "cal.nchan": settings.get("nchan", 0),
        "cal.maxiter": settings.get("maxiter", 50),
        "cal.tolerance": settings.get("tolerance", 1e-4),
        "cal.stepsize": settings.get("stepsize", 0.2),
        "cal.uvlambdamin": settings.get("uvlambdamin", 0),
        # Needs LOFAR's beam tables in the Measurement Set (the simulator's with --station-beam).
        "cal.usebeammodel": settings.get("usebeammodel", False),
    }


def selfcal_parset(
    msin: Path, h5parm: Path, skymodel: Path, settings: dict[str, Any], threads: int = 1
) -> Parset:
    """DDECal of one phase per station (X and Y alike) against the target's own sky model.

    Never with the beam model: the data were corrected for the beam at the phase centre, and the
    model (from their image, or the survey's as `field_skymodel` scaled it) already carries what
    is left of it (DDECal would apply it twice).
    """
    selfcal = settings.get("selfcal", {})
    return calibrate_parset(msin, h5parm, skymodel, settings, threads) | {
        "cal.usebeammodel": False,
        "cal.mode": "scalarphase",
        "cal.solint": selfcal.get("solint", 1),
        "cal.nchan": selfcal.get("nchan", 0),
    }


def applycal_parset(
    msin: Path, msout: Path, h5parm: Path, phase_only: bool = False, beam: bool = False
) -> Parset:
    """Apply amplitude and phase solutions (DDECal names them *000), or the phases alone; with
    `beam`, then correct for the station beam towards the phase centre (DP3 applybeam, full
    beam), as a target calibrated against a calibrator solved with the beam model needs."""
    soltabs = {"phase": "phase000"} if phase_only else {"amp": "amplitude000", "phase": "phase000"}
    parset = _io(msin, msout) | {
        "steps": ["apply", "beam"] if beam else ["apply"],
        "apply.type": "applycal",
        "apply.parmdb": str(h5parm),
        "apply.steps": list(soltabs),
    }
    if beam:
        parset |= {"beam.type": "applybeam", "beam.beammode": "full"}
    for step, soltab in soltabs.items():
        parset[f"apply.{step}.correction"] = soltab
    return parset

# How the calibration reaches the target (calibration.strategy, calibration.usebeammodel): the
# paths and input functions that differ with them, read by the rules and by local_products().

# calibration.strategy: `gains` applies each calibrator subband's gains to the target's;
# `linc` applies the bandpass, clocks and dTEC of all of them (rules/selfcal.smk), then the
# target phase-self-calibrates in `selfcal.rounds` rounds, each against the previous image.
LINC = config["calibration"].get("strategy", "gains") == "linc"
SELFCAL_ROUNDS = (
    config["calibration"].get("selfcal", {}).get("rounds", 2) if LINC else 0
)
# A survey's sky model of the target field for the first self-calibration round ("": the first
# image's).
SURVEY_SKYMODEL = (
    config["calibration"].get("selfcal", {}).get("skymodel", "") if LINC else ""
)
# Half the image's side (deg): the survey's sources farther out could not be in its images.
IMAGE_RADIUS_DEG = (
    config["imaging"]["size"] * config["imaging"]["scale_arcsec"] / 7200.0
)
# Where apply_calibration writes a target subband: the input of imaging or of self-calibration.
APPLIED_MS = (
    "work/transferred/{obs}_SB{sb}.MS" if LINC else "work/calibrated/{obs}_SB{sb}.MS"
)


# With the beam model the fluxes scored against the truth are the beam-corrected ones.
BEAM = config["calibration"]["usebeammodel"]
SCORED_CATALOGUE = (
    "results/{obs}/catalogue/{obs}.pbcor.srl.csv"
    if BEAM
    else "results/{obs}/catalogue/{obs}.srl.fits"
)


def calibrator_solutions(wildcards):
    cal = row(wildcards.obs, wildcards.sb)["calibrator"]
    if LINC:
        return f"results/{cal}/calibration/{cal}_transfer.h5"
    return f"results/{cal}/calibration/{cal}_SB{wildcards.sb}.h5"


def selfcal_ms(obs, sb, rnd):
    """A target subband after self-calibration round `rnd` (0: before any)."""
    if rnd == 0:
        return APPLIED_MS.format(obs=obs, sb=sb)
    return f"work/selfcal/r{rnd}/{obs}_SB{sb}.MS"


def calibrated_subbands(wildcards):
    obs = wildcards.obs
    return [selfcal_ms(obs, sb, SELFCAL_ROUNDS) for sb in subbands(obs)]

# calibration.strategy linc: LOFAR's calibrator strategy (LINC). The calibrator's per-channel
# solutions of all subbands are reduced to a bandpass, station clocks and dTEC, which the
# target's subbands take through apply_calibration; the target then phase-self-calibrates
# against sky models of its own images, `selfcal.rounds` times; with a survey's sky model of the
# field (selfcal.skymodel), the first round solves against it instead, as LINC does with TGSS.


def calibrator_subband_solutions(wildcards):
    return [
        f"results/{wildcards.obs}/calibration/{wildcards.obs}_SB{sb}.h5"
        for sb in subbands(wildcards.obs)
    ]


def selfcal_round_subbands(wildcards):
    obs = wildcards.obs
    return [selfcal_ms(obs, sb, int(wildcards.rnd)) for sb in subbands(obs)]


def previous_round_skymodel(wildcards):
    obs, rnd = wildcards.obs, int(wildcards.rnd)
    if rnd == 1 and SURVEY_SKYMODEL:
        return f"results/{obs}/selfcal/{obs}-survey.skymodel"
    return f"results/{obs}/selfcal/{obs}-r{rnd - 1}.skymodel"


def first_round_subbands(wildcards):
    return [selfcal_ms(wildcards.obs, sb, 0) for sb in subbands(wildcards.obs)]


rule transfer_solutions:
    """Reduce a calibrator's solutions of all subbands to its bandpass, station clocks and
    dTEC (LINC's calibrator pipeline), as an h5parm for the target's subbands."""
    input:
        calibrator_subband_solutions,
    output:
        h5parm="results/{obs}/calibration/{obs}_transfer.h5",
        summary="results/{obs}/calibration/{obs}_clocktec.json",
    log:
        "logs/transfer_solutions/{obs}.log",
    benchmark:
        "benchmarks/transfer_solutions/{obs}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("transfer_solutions")
    resources:
        **rule_resources("transfer_solutions"),
    script:
        "../scripts/transfer_solutions.py"


rule qa_transfer:
    """Bandpass, clocks and dTEC of the calibrator, against the truth if known."""
    input:
        calibrator_subband_solutions,
    output:
        plot=report(
            "results/{obs}/qa/{obs}_transfer.png",
            caption="../report/transfer.rst",
            category="Calibration",
            labels={"observation": "{obs}", "figure": "bandpass, clock, TEC"},
        ),
        scores="results/{obs}/qa/{obs}_transfer.json",
    log:
        "logs/qa_transfer/{obs}.log",
    benchmark:
        "benchmarks/qa_transfer/{obs}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("qa_transfer")
    resources:
        **rule_resources("qa_transfer"),
    params:
        truth=configured_file("truth"),
    script:
        "../scripts/qa_transfer.py"


rule field_skymodel:
    """The survey's sky model of a target's field (calibration.selfcal.skymodel): the sources
    within the image, in one patch, with the fluxes the beam leaves in the data."""
    input:
        survey=configured_file("calibration.selfcal.skymodel"),
        ms=first_round_subbands,
    output:
        "results/{obs}/selfcal/{obs}-survey.skymodel",
    log:
        "logs/field_skymodel/{obs}.log",
    benchmark:
        "benchmarks/field_skymodel/{obs}.tsv"
    container:
        config["containers"]["python"]
    threads: rule_threads("field_skymodel")
    resources:
        **rule_resources("field_skymodel"),
    params:
        radius_deg=IMAGE_RADIUS_DEG,
        beam=BEAM,
    script:
        "../scripts/field_skymodel.py"


rule image_selfcal:
    """Image a target before self-calibration round rnd + 1 (WSClean)."""
    input:
        selfcal_round_subbands,
    output:
        image="results/{obs}/selfcal/{obs}-r{rnd}-image.fits",
        residual="results/{obs}/selfcal/{obs}-r{rnd}-residual.fits",
        model="results/{obs}/selfcal/{obs}-r{rnd}-model.fits",
        psf="results/{obs}/selfcal/{obs}-r{rnd}-psf.fits",
    log:
        "logs/image_selfcal/{obs}-r{rnd}.log",
    benchmark:
        "benchmarks/image_selfcal/{obs}-r{rnd}.tsv"
    wildcard_constraints:
        rnd=r"\d+",
    container:
        config["containers"]["wsclean"]
    threads: rule_threads("image_selfcal")
    resources:
        **rule_resources("image_selfcal"),
    params:
        settings=config["imaging"],
    script:
        "../scripts/image.py"


rule find_sources_selfcal:
    """The sky model (PyBDSF) that self-calibration round rnd + 1 solves against."""
    input:
        "results/{obs}/selfcal/{obs}-r{rnd}-image.fits",
    output:
        fits="results/{obs}/selfcal/{obs}-r{rnd}.srl.fits",
        csv="results/{obs}/selfcal/{obs}-r{rnd}.srl.csv",
        skymodel="results/{obs}/selfcal/{obs}-r{rnd}.skymodel",
    log:
        "logs/find_sources_selfcal/{obs}-r{rnd}.log",
    benchmark:
        "benchmarks/find_sources_selfcal/{obs}-r{rnd}.tsv"
    wildcard_constraints:
        rnd=r"\d+",
    container:
        config["containers"]["pybdsf"]
    threads: rule_threads("find_sources_selfcal")
    resources:
        **rule_resources("find_sources_selfcal"),
    params:
        settings=config["source_finding"],
    script:
        "../scripts/find_sources.py"


rule selfcal:
    """Round rnd of the target's phase self-calibration (DP3 DDECal scalarphase, then
    applycal), on the subband as the calibrator's solutions left it."""
    input:
        ms=APPLIED_MS,
        skymodel=previous_round_skymodel,
    output:
        h5parm="results/{obs}/calibration/{obs}_SB{sb}_selfcal{rnd}.h5",
        ms=scratch("work/selfcal/r{rnd}/{obs}_SB{sb}.MS"),
    log:
        "logs/selfcal/{obs}_SB{sb}-r{rnd}.log",
    benchmark:
        "benchmarks/selfcal/{obs}_SB{sb}-r{rnd}.tsv"
    wildcard_constraints:
        rnd=r"[1-9]\d*",
    container:
        config["containers"]["dp3"]
    threads: rule_threads("selfcal")
    resources:
        **rule_resources("selfcal"),
    params:
        settings={k: v for k, v in config["calibration"].items() if k != "skymodel"},
    script:
        "../scripts/selfcal.py"

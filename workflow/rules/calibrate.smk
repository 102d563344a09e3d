rule calibrate:
    """Solve the calibrator's station gains against its sky model (DP3 DDECal) into an h5parm."""
    input:
        ms="work/averaged/{obs}_SB{sb}.MS",
        skymodel=configured_file("calibration.skymodel"),
    output:
        "results/{obs}/calibration/{obs}_SB{sb}.h5",
    log:
        "logs/calibrate/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/calibrate/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["dp3"]
    threads: rule_threads("calibrate")
    resources:
        **rule_resources("calibrate"),
    params:
        settings={k: v for k, v in config["calibration"].items() if k != "skymodel"},
    script:
        "../scripts/calibrate.py"


rule apply_calibration:
    """Apply the calibrator's solutions to a target subband (DP3 applycal): its gains of the
    same subband, or with calibration.strategy linc its bandpass, clocks and dTEC."""
    input:
        ms="work/averaged/{obs}_SB{sb}.MS",
        h5parm=calibrator_solutions,
    output:
        scratch(APPLIED_MS),
    log:
        "logs/apply_calibration/{obs}_SB{sb}.log",
    benchmark:
        "benchmarks/apply_calibration/{obs}_SB{sb}.tsv"
    container:
        config["containers"]["dp3"]
    threads: rule_threads("apply_calibration")
    resources:
        **rule_resources("apply_calibration"),
    params:
        # a calibrator solved with the beam model leaves the beam in the target's data
        beam=config["calibration"]["usebeammodel"],
    script:
        "../scripts/apply_calibration.py"

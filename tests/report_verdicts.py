"""Verdicts to render comparison reports from (not a test module): the one the report's unit
tests check (tests/unit/test_compare_report.py) and, built on it, a realistic one for the browser
test (tests/integration/test_report_in_browser.py). Shared through tests/, which pytest puts on
sys.path for tests/conftest.py."""

from __future__ import annotations

PLANTED = "<script>alert('x')</script>"


def product(path: str, method: str, equivalent: bool, summary: str,
            metrics: dict | None = None) -> dict:
    """One product of a verdict, as `lofar-datalake compare` writes it."""
    return {
        "path": path,
        "method": method,
        "equivalent": equivalent,
        "summary": summary,
        "metrics": {"max_abs_diff": 2.4e-7} if metrics is None else metrics,
        "params": {},
    }


def verdict() -> dict:
    """Small: one equivalent product, one that differs (its name an HTML tag), one ignored."""
    run = {
        "label": "DataLake",
        "workdir": "/runs/dl",
        "exit_code": 0,
        "wall_s": 120.0,
        "stages": {"image": {"jobs": 1, "wall_s": 30.5}},
        "staging": {"wall_s": 6.0, "files": 2, "bytes": 6 << 20, "bytes_source": "rucio"},
        "requests": {"rucio": 14, "fts": 3, "fts_jobs": 1, "rucio_rules": 1},
    }
    local = {
        **run,
        "label": "local copy",
        "workdir": "/runs/local",
        "wall_s": 100.0,
        "requests": {"rucio": None, "fts": None, "fts_jobs": None, "rucio_rules": None},
        "copy": {"wall_s": 3.0, "files": 2, "bytes": 6 << 20},
    }
    return {
        "equivalent": False,
        "created": "2026-11-26T16:00:00+00:00",
        "workflow": {"snakefile": "Snakefile", "configfiles": ["a.yaml"], "profile": None},
        "runs": {"datalake": run, "local": local},
        "tolerances": [
            {"pattern": "*.fits", "method": "fits-image", "params": {"atol": 1e-6, "rtol": 1e-5}}
        ],
        "products": [
            product("L1/a_first.json", "json-numeric", True, "same keys"),
            product(f"L1/{PLANTED}.fits", "fits-image", False, "max |diff| 0.1 > limit"),
            product("L1/qa/x.png", "ignore", True, "not compared: figure"),
        ],
        "notes": ["a note with <b>markup</b>"],
    }


def realistic_verdict(equivalent: bool | None) -> dict:
    """A LOFAR run's products, with their metrics, as the verdict of the whole has them: all
    equivalent (True), or two of them differing, one missing (False), or none because the runs
    failed (None); two not compared (ignored by rule) in the first two."""
    image = {"max_abs_diff": 3.1e-9, "rms_ref": 1.2e-3, "rel_rms_diff": 2.6e-6, "pixels": 2304}
    products = [
        product(f"L1/preprocessed/L1_SB00{i}_uv.dp3.MS.tar", "ms-visibilities", True,
                "visibilities within atol 1e-06, rtol 1e-05; flags identical",
                {"max_abs_diff": 4.2e-8, "flagged_fraction": 0.031, "rows": 59_904})
        for i in range(4)
    ]
    products += [
        product("L1/calibrated/L1_solutions.h5", "h5parm", True, "solutions within tolerance",
                {"max_abs_diff": 1.1e-7, "solutions": 4096}),
        product("L1/image/L1-image.fits", "fits-image", True, "max |diff| 3.1e-09 within limit",
                image),
        product("L1/qa/L1-image.png", "ignore", True, "not compared: figure", {}),
        product("L1/logs/L1_image.log", "ignore", True, "not compared: log", {}),
    ]
    if equivalent is False:
        products += [
            product("L1/catalogue/L1.srl.fits", "catalogue", False,
                    "2 of 41 sources unmatched; flux differs by 3.2 % > 1 %",
                    {"matched": 39, "unmatched": 2, "max_rel_flux_diff": 0.032}),
            product("L1/qa/L1_summary.json", "json-numeric", False, "missing in candidate", {}),
        ]
    else:
        products.append(product("L1/catalogue/L1.srl.fits", "catalogue", True,
                                "41 sources matched; flux within 1 %",
                                {"matched": 41, "unmatched": 0, "max_rel_flux_diff": 4e-7}))
    notes = ["the DataLake run staged 4 inputs from SITE_A_DISK"]
    if equivalent is None:
        products, notes = [], ["the DataLake run failed (exit code 1) before its products"]
    data = verdict()
    data.update(equivalent=equivalent, products=products, notes=notes)
    if equivalent is None:
        data["runs"]["datalake"]["exit_code"] = 1
    return data

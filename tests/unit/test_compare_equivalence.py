"""Product equivalence of two result trees, on small synthetic products in the pipeline formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from lofar_datalake.compare.equivalence import compare_trees, to_json
from lofar_datalake.compare.rules import RulesError, load_rules, parse_rules, rule_for
from lofar_datalake.pipeline.catalogue import CSV_COLUMNS

RULES = load_rules()  # the shipped config/compare.yaml
OBS = "L700001"
SKYMODEL = (
    "format = Name, Type, Ra, Dec, I, MajorAxis, ReferenceFrequency='1.50000e+08'\n\n"
    "L700001-image_w0_i1_s1_g1, POINT, 08:46:16.300172, +52.10.6.932145, 1.938e+00, "
    "0.00000e+00, 1.50000e+08\n"
    "L700001-image_w0_i7_s7_g7, GAUSSIAN, 08:43:29.007116, +51.51.59.390982, 1.235e+00, "
    "3.33961e+00, 1.50000e+08\n"
)


def write_image(path: Path, data: np.ndarray, bmaj: float = 0.0054) -> None:
    """A WSClean-like image: 4-D (Stokes, frequency, Dec, RA), float32, SIN projection."""
    hdu = fits.PrimaryHDU(data.astype(np.float32)[None, None])
    h = hdu.header
    h["BUNIT"], h["BMAJ"], h["BMIN"], h["BPA"] = "JY/BEAM", bmaj, 0.0049, 154.5
    for i, (ctype, crpix, crval, cdelt) in enumerate(
        [
            ("RA---SIN", 33, 131.25, -1 / 900),
            ("DEC--SIN", 33, 52.0, 1 / 900),
            ("FREQ", 1, 1.5e8, 195312.5),
            ("STOKES", 1, 1.0, 1.0),
        ],
        start=1,
    ):
        h[f"CTYPE{i}"], h[f"CRPIX{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"] = ctype, crpix, crval, cdelt
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)


def sky_image(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1e-3, (n, n))
    y, x = np.mgrid[:n, :n]
    for cx, cy, flux in ((20, 30, 1.9), (45, 12, 0.5), (40, 50, 0.05)):
        image += flux * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4.0)
    return image


def source_table(ra: list[float], dec: list[float], flux: list[float]) -> Table:
    """A PyBDSF source list with the columns the pipeline writes (FITS gets them all)."""
    n = len(ra)
    columns = {c: np.zeros(n) for c in CSV_COLUMNS}
    columns |= {
        "Source_id": np.arange(n),
        "RA": ra,
        "DEC": dec,
        "Total_flux": flux,
        "Peak_flux": np.asarray(flux) * 0.98,
        "S_Code": ["S"] * n,
    }
    return Table(columns)


def write_catalogues(
    directory: Path, table: Table, kinds: tuple[str, ...] = ("fits", "csv")
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        table.write(directory / f"{OBS}.srl.{kind}", format=kind, overwrite=True)


def write_h5parm(path: Path, phase_offset: float = 0.0, history: str = "created now") -> None:
    """DP3's layout: sol000/{amplitude000,phase000}/{val,weight,time,freq,ant,dir,pol}, an
    antenna table, and a HISTORY attribute stamped with the creation time."""
    rng = np.random.default_rng(5)
    shape = (6, 1, 3, 1, 2)  # time, freq, ant, dir, pol
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        ss = h5.create_group("sol000")
        antenna = np.zeros(3, dtype=[("name", "S16"), ("position", "<f4", (3,))])
        antenna["name"] = [b"CS001HBA0", b"CS002HBA0", b"RS106HBA"]
        ss["antenna"] = antenna
        for name, val in (
            ("amplitude000", 1 + 0.1 * rng.random(shape)),
            ("phase000", rng.uniform(-3, 3, shape) + phase_offset),
        ):
            st = ss.create_group(name)
            val[0, 0, 2, 0, :] = np.nan  # one unsolved station and time
            st["val"] = val
            st["val"].attrs["AXES"] = np.bytes_(b"time,freq,ant,dir,pol")
            st["val"].attrs["HISTORY000"] = np.bytes_(history.encode())
            st["weight"] = np.where(np.isnan(val), 0.0, 1.0).astype(np.float32)
            st["time"] = 4.9e9 + 10.0 * np.arange(6)
            st["freq"] = np.array([1.5e8])
            st["ant"] = antenna["name"]
            st["dir"] = np.array([b"[cal]"])
            st["pol"] = np.array([b"XX", b"YY"])


def make_tree(root: Path) -> Path:
    """One of every product kind, where the workflow puts it."""
    write_image(root / OBS / "image" / f"{OBS}-image.fits", sky_image())
    write_catalogues(
        root / OBS / "catalogue",
        source_table([131.6, 131.4, 131.3], [51.9, 52.1, 52.2], [1.9, 0.5, 0.05]),
    )
    (root / OBS / "catalogue" / f"{OBS}.skymodel").write_text(SKYMODEL)
    write_h5parm(root / "L700000" / "calibration" / "L700000_SB000.h5")
    qa = root / OBS / "qa"
    qa.mkdir(parents=True)
    scores = {"image_rms_jy": 0.0037815389, "n_found": 3, "truth": True, "ids": [1, 2]}
    (qa / f"{OBS}_sources.json").write_text(json.dumps(scores, indent=2))
    (qa / f"{OBS}_sources.png").write_bytes(b"\x89PNG fake figure")
    (root / "provenance.json").write_text(json.dumps({"run": str(root)}))
    (root / "README.txt").write_text("products of a run\n")
    return root


@pytest.fixture(scope="module")
def reference_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("compare") / "reference")


@pytest.fixture
def trees(reference_tree: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The reference tree and a copy to perturb; provenance differs, as between real runs."""
    cand = tmp_path / "candidate"
    shutil.copytree(reference_tree, cand)
    (cand / "provenance.json").write_text(json.dumps({"run": "elsewhere"}))
    return reference_tree, cand


def by_path(results: list) -> dict:
    return {r.path: r for r in results}


def test_identical_products_are_equivalent_and_each_kind_gets_its_method(trees) -> None:
    results = by_path(compare_trees(*trees, RULES))
    methods = {p: r.method for p, r in results.items()}
    assert methods == {
        "L700000/calibration/L700000_SB000.h5": "h5parm",
        f"{OBS}/catalogue/{OBS}.skymodel": "text-numeric",
        f"{OBS}/catalogue/{OBS}.srl.csv": "catalogue",
        f"{OBS}/catalogue/{OBS}.srl.fits": "catalogue",
        f"{OBS}/image/{OBS}-image.fits": "fits-image",
        f"{OBS}/qa/{OBS}_sources.json": "json-numeric",
        f"{OBS}/qa/{OBS}_sources.png": "ignore",
        "README.txt": "bytes",
        "provenance.json": "ignore",
    }
    assert all(r.equivalent for r in results.values()), [r.summary for r in results.values()]
    image = results[f"{OBS}/image/{OBS}-image.fits"]
    assert image.metrics["max_abs_diff"] == 0 and image.summary.startswith("max |diff| 0")
    assert results[f"{OBS}/catalogue/{OBS}.srl.fits"].metrics["n_matched"] == 3


def test_differences_at_float_rounding_level_are_equivalent(trees) -> None:
    ref, cand = trees
    image = sky_image()
    image[20, 30] += 2.4e-7  # a float32 rounding step at the 1.9 Jy/beam peak
    write_image(cand / OBS / "image" / f"{OBS}-image.fits", image)
    write_catalogues(
        cand / OBS / "catalogue",
        source_table(
            [131.6 + 1e-10, 131.4, 131.3], [51.9, 52.1, 52.2], [1.9 * (1 + 2e-7), 0.5, 0.05]
        ),
    )
    # a sky model whose printed fluxes and positions flip in the last digit
    sky = SKYMODEL.replace("3.33961e+00", "3.33960e+00").replace("59.390982", "59.390981")
    (cand / OBS / "catalogue" / f"{OBS}.skymodel").write_text(sky)
    (cand / OBS / "qa" / f"{OBS}_sources.json").write_text(
        json.dumps({"image_rms_jy": 0.0037815421, "n_found": 3, "truth": True, "ids": [1, 2]})
    )
    write_h5parm(
        cand / "L700000" / "calibration" / "L700000_SB000.h5",
        phase_offset=1e-9,
        history="created a minute later",
    )
    results = compare_trees(ref, cand, RULES)
    assert all(r.equivalent for r in results), [(r.path, r.summary) for r in results]
    image_result = by_path(results)[f"{OBS}/image/{OBS}-image.fits"]
    assert 0 < float(image_result.metrics["max_abs_diff"]) < 1e-6
    assert "≤" in image_result.summary and "JY/BEAM" in image_result.summary


def perturb_image_pixel(cand: Path) -> None:
    image = sky_image()
    image[5, 5] += 1e-3
    write_image(cand / OBS / "image" / f"{OBS}-image.fits", image)


def blank_image_pixel(cand: Path) -> None:
    image = sky_image()
    image[0, 0] = np.nan
    write_image(cand / OBS / "image" / f"{OBS}-image.fits", image)


def change_beam(cand: Path) -> None:
    write_image(cand / OBS / "image" / f"{OBS}-image.fits", sky_image(), bmaj=0.0060)


def raise_one_flux(cand: Path, kind: str = "fits") -> None:
    table = source_table([131.6, 131.4, 131.3], [51.9, 52.1, 52.2], [1.9, 0.51, 0.05])
    write_catalogues(cand / OBS / "catalogue", table, (kind,))


def raise_one_flux_csv(cand: Path) -> None:
    raise_one_flux(cand, "csv")


def move_one_source(cand: Path) -> None:
    table = source_table([131.6, 131.4, 131.3], [51.9, 52.1, 52.2 + 1 / 3600], [1.9, 0.5, 0.05])
    write_catalogues(cand / OBS / "catalogue", table, ("fits",))


def change_phase(cand: Path) -> None:
    write_h5parm(cand / "L700000" / "calibration" / "L700000_SB000.h5", phase_offset=1e-3)


def change_score(cand: Path) -> None:
    (cand / OBS / "qa" / f"{OBS}_sources.json").write_text(
        json.dumps({"image_rms_jy": 0.0038, "n_found": 3, "truth": True, "ids": [1, 2]})
    )


def drop_score_key(cand: Path) -> None:
    (cand / OBS / "qa" / f"{OBS}_sources.json").write_text(
        json.dumps({"image_rms_jy": 0.0037815389, "truth": True, "ids": [1, 2]})
    )


def change_skymodel_flux(cand: Path) -> None:
    sky = SKYMODEL.replace("1.235e+00", "1.240e+00")
    (cand / OBS / "catalogue" / f"{OBS}.skymodel").write_text(sky)


def change_skymodel_type(cand: Path) -> None:
    sky = SKYMODEL.replace("GAUSSIAN", "POINT")
    (cand / OBS / "catalogue" / f"{OBS}.skymodel").write_text(sky)


def change_readme(cand: Path) -> None:
    (cand / "README.txt").write_text("products of another run\n")


@pytest.mark.parametrize(
    ("perturb", "path", "reason"),
    [
        (perturb_image_pixel, f"{OBS}/image/{OBS}-image.fits", "at 1 of 4096 pixels"),
        (blank_image_pixel, f"{OBS}/image/{OBS}-image.fits", "NaN (blanked) in one image"),
        (change_beam, f"{OBS}/image/{OBS}-image.fits", "header BMAJ"),
        (raise_one_flux, f"{OBS}/catalogue/{OBS}.srl.fits", "Total_flux of 1 matched source"),
        (raise_one_flux_csv, f"{OBS}/catalogue/{OBS}.srl.csv", "Total_flux of 1 matched source"),
        (move_one_source, f"{OBS}/catalogue/{OBS}.srl.fits", "1 reference-only and 1 candidate"),
        (change_phase, "L700000/calibration/L700000_SB000.h5", "sol000/phase000/val"),
        (change_score, f"{OBS}/qa/{OBS}_sources.json", "/image_rms_jy: 0.003781539 vs 0.0038"),
        (drop_score_key, f"{OBS}/qa/{OBS}_sources.json", "keys in one file only: n_found"),
        (change_skymodel_flux, f"{OBS}/catalogue/{OBS}.skymodel", "line 4: 1.235 vs 1.24"),
        (change_skymodel_type, f"{OBS}/catalogue/{OBS}.skymodel", "text differs: line 4"),
        (change_readme, "README.txt", "sha256 differs"),
    ],
)
def test_differences_beyond_tolerance_are_named(trees, perturb, path, reason) -> None:
    ref, cand = trees
    perturb(cand)
    control = "README.txt"  # an untouched product, compared alongside
    results = by_path(compare_trees(ref, cand, RULES, exclude=lambda p: p not in (path, control)))
    assert not results[path].equivalent and reason in results[path].summary
    assert results[control].equivalent or path == control


def test_missing_products_are_not_equivalent(trees) -> None:
    ref, cand = trees
    (cand / OBS / "catalogue" / f"{OBS}.srl.fits").unlink()
    (cand / OBS / "extra.txt").write_text("only here\n")
    (cand / OBS / "qa" / f"{OBS}_sources.png").unlink()  # ignored: its absence is no evidence
    results = by_path(compare_trees(ref, cand, RULES))
    assert results[f"{OBS}/catalogue/{OBS}.srl.fits"].summary == "missing in candidate"
    assert results[f"{OBS}/extra.txt"].summary == "missing in reference"
    assert not results[f"{OBS}/extra.txt"].equivalent
    assert results[f"{OBS}/qa/{OBS}_sources.png"].equivalent


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        (f"{OBS}/image/{OBS}-image.fits", b"SIMPLE  = garbage", "unreadable as FITS image"),
        (f"{OBS}/catalogue/{OBS}.srl.fits", b"\x00" * 100, "unreadable as source list"),
        (f"{OBS}/catalogue/{OBS}.srl.csv", b"a,b\n1,2\n", "no column RA, DEC, Total_flux"),
        ("L700000/calibration/L700000_SB000.h5", b"not hdf5", "unreadable as HDF5"),
        (f"{OBS}/qa/{OBS}_sources.json", b"{not json", "unreadable as JSON"),
        (f"{OBS}/catalogue/{OBS}.skymodel", b"\xff\xfe\xfa", "unreadable as text"),
    ],
)
def test_corrupt_products_are_not_equivalent(trees, path, content, reason) -> None:
    ref, cand = trees
    (cand / path).write_bytes(content)
    result = by_path(compare_trees(ref, cand, RULES, exclude=lambda p: p != path))[path]
    assert not result.equivalent
    assert result.summary.startswith("candidate unreadable") and reason in result.summary


def test_truncated_fits_image_is_not_equivalent(trees) -> None:
    ref, cand = trees
    path = cand / OBS / "image" / f"{OBS}-image.fits"
    path.write_bytes(path.read_bytes()[:-4000])
    result = by_path(compare_trees(ref, cand, RULES))[f"{OBS}/image/{OBS}-image.fits"]
    assert not result.equivalent and "candidate unreadable as FITS image" in result.summary


def test_hidden_and_excluded_paths_are_skipped(trees) -> None:
    ref, cand = trees
    (cand / ".snakemake" / "log").mkdir(parents=True)
    (cand / ".snakemake" / "log" / "run.log").write_text("x")
    (cand / ".partial.tmp").write_text("x")
    (cand / "logs").mkdir()
    (cand / "logs" / "image.log").write_text("x")
    results = compare_trees(ref, cand, RULES, exclude=lambda p: p.startswith("logs/"))
    assert {r.path for r in results} == {r.path for r in compare_trees(ref, ref, RULES)}


def test_path_without_a_rule_is_compared_by_bytes(trees) -> None:
    ref, cand = trees
    change_readme(cand)
    only_json = parse_rules({"rules": [{"pattern": "*.json", "method": "bytes"}]}, "test")
    result = by_path(compare_trees(ref, cand, only_json))["README.txt"]
    assert result.method == "bytes" and not result.equivalent


def test_results_are_strict_json(trees) -> None:
    ref, cand = trees
    (cand / OBS / "qa" / f"{OBS}_sources.json").write_text('{"image_rms_jy": NaN}')
    products = to_json(compare_trees(ref, cand, RULES))
    text = json.dumps(products, allow_nan=False)
    assert json.loads(text)[0].keys() == {
        "path",
        "method",
        "equivalent",
        "summary",
        "metrics",
        "params",
    }


def test_default_rules_cover_the_pipeline_products() -> None:
    expected = {
        "L700001/image/L700001-residual.fits": "fits-image",
        "L700001/catalogue/L700001.srl.fits": "catalogue",
        "L700000/qa/L700000_SB000_flags.tsv": "text-numeric",
        "L700001/qa/L700001_matches.csv": "text-numeric",
        "L700001/qa/L700001_flux.png": "ignore",
        "L700000/provenance.json": "ignore",
        "results/L700001/image/L700001-image.fits": "fits-image",  # also from the workdir root
        "anything.else": "bytes",
    }
    assert {p: rule_for(p, RULES).method for p in expected} == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"pattern": "*.fits", "method": "pixels"}, "rule 1: key 'method': unknown method"),
        ({"method": "bytes"}, "rule 1: missing or empty key 'pattern'"),
        ({"pattern": "*", "method": "bytes", "tolerance": 1}, "rule 1: unknown key 'tolerance'"),
        ({"pattern": "*.h5", "method": "h5parm", "params": {"atol": 0}}, "missing param 'rtol'"),
        (
            {"pattern": "*.h5", "method": "h5parm", "params": {"atol": 0, "rtol": 0, "ntol": 1}},
            "rule 1: unknown param 'ntol'",
        ),
        (
            {"pattern": "*.fits", "method": "fits-image", "params": {"atol": "1e-6", "rtol": 0}},
            "param 'atol' must be a non-negative number",
        ),
        ({"pattern": "*.png", "method": "ignore"}, "rule 1: missing param 'reason'"),
    ],
)
def test_bad_rules_file_names_file_rule_and_key(tmp_path: Path, rule, message) -> None:
    path = tmp_path / "compare.yaml"
    good = {"pattern": "*.json", "method": "json-numeric", "params": {"atol": 0, "rtol": 1e-4}}
    path.write_text(json.dumps({"rules": [good, rule]}))  # JSON is YAML
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_rules_file_without_rules_key(tmp_path: Path) -> None:
    path = tmp_path / "compare.yaml"
    path.write_text("rule:\n  - {pattern: '*', method: bytes}\n")
    with pytest.raises(RulesError, match="missing key 'rules'"):
        load_rules(path)

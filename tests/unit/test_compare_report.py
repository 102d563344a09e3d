"""The comparison report: figures from synthetic runs, and one self-contained, escaped HTML page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from report_verdicts import PLANTED, verdict

from lofar_datalake.compare import figures
from lofar_datalake.compare.html import render
from lofar_datalake.compare.verdict import Verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_image(path: Path, data: np.ndarray) -> None:
    """4-D like WSClean's output: (Stokes, frequency, Dec, RA)."""
    hdu = fits.PrimaryHDU(data.astype(np.float32)[None, None])
    hdu.header["BUNIT"] = "JY/BEAM"
    hdu.writeto(path, overwrite=True)


def write_catalogue(path: Path, ra: list[float], dec: list[float], flux: list[float]) -> None:
    table = Table({"Source_id": np.arange(len(ra)), "RA": ra, "DEC": dec, "Total_flux": flux})
    table.write(path, format="fits")


@pytest.fixture(scope="module")
def figure_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1e-3, (48, 48))
    image[20:23, 30:33] += 1.5
    write_image(out / "ref.fits", image)
    write_image(out / "cand.fits", image + rng.normal(0, 1e-7, image.shape))
    write_catalogue(
        out / "ref.srl.fits", [131.2, 131.3, 131.4], [52.0, 52.1, 52.2], [0.05, 0.5, 1.9]
    )
    write_catalogue(
        out / "cand.srl.fits",
        [131.2, 131.3, 131.5],
        [52.0, 52.1, 52.2],
        [0.05, 0.5 * (1 + 3e-7), 1.9],
    )
    made = {
        "Wall time per stage": out / "stages.png",
        "Staging timeline": out / "timeline.png",
        "Image difference: L1/image/L1-image.fits": out / "diff.png",
        "Catalogue fluxes: L1/catalogue/L1.srl.fits": out / "flux.png",
    }
    figures.stage_timing_bars(
        {"DataLake": {"flag": 12.0, "image": 30.5}, "local copy": {"flag": 11.0, "image": 30.1}},
        made["Wall time per stage"],
    )
    events = {
        "DataLake": [
            {
                "did": "lofar:L1/L1_SB000_uv.MS.tar",
                "start": 100.0,
                "end": 104.0,
                "bytes": 3 << 20,
                "how": "rule",
            },
            {
                "did": "lofar:L1/L1_SB001_uv.MS.tar",
                "start": 100.5,
                "end": 106.0,
                "bytes": 3 << 20,
                "how": "rule",
            },
        ],
        "local copy": [
            {
                "did": "lofar:L1/L1_SB000_uv.MS.tar",
                "start": 500.0,
                "end": 500.0,
                "bytes": 3 << 20,
                "how": "hardlink",
            },
        ],
    }
    figures.staging_timeline(events, made["Staging timeline"])
    figures.image_difference_map(
        out / "ref.fits", out / "cand.fits", made["Image difference: L1/image/L1-image.fits"]
    )
    figures.flux_scatter(
        out / "ref.srl.fits",
        out / "cand.srl.fits",
        made["Catalogue fluxes: L1/catalogue/L1.srl.fits"],
        1.0,
    )
    return made


def test_figures_are_png_files(figure_files: dict[str, Path]) -> None:
    for path in figure_files.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, path


def test_report_is_one_escaped_self_contained_page(figure_files, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    render(Verdict.from_json(verdict()), figure_files, out)
    page = out.read_text()
    assert "NOT EQUIVALENT" in page and "3 products: 1 equivalent, 1 differ" in page
    # the differing product comes first, before the one that sorts first by name
    assert page.index("max |diff| 0.1 &gt; limit") < page.index("L1/a_first.json")
    assert PLANTED not in page and "&lt;script&gt;" in page and "<script" not in page
    assert "&lt;b&gt;markup&lt;/b&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(figure_files)
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "1.20×" in page  # wall time ratio DataLake / local copy
    assert "Wall time of each workflow rule" in page  # the caption of a known figure


def test_verdict_json_round_trips_key_for_key() -> None:
    data = {**verdict(), "figures": {"Staging timeline": "t.png"}}
    for run in data["runs"].values():
        run["requests"].pop("fts")
        run["log"] = None
        run["staging"]["events"] = [{"did": "rule to SITE_A", "start": 1.0, "end": 2.0,
                                     "bytes": 3, "how": "Rucio rule (conveyor + FTS), 1 files"},
                                    {"did": "lofar:a", "start": 1.5, "end": 2.0, "bytes": 3,
                                     "how": "symlink from SITE_A", "rse": "SITE_A"}]
    written = Verdict.from_json(data).to_json()
    assert written == data
    assert list(written["runs"]["local"]) == ["label", "workdir", "exit_code", "log", "wall_s",
                                              "stages", "staging", "requests", "copy"]


def test_report_survives_a_sparse_verdict_and_a_missing_figure(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    sparse = Verdict.from_json({"runs": {"datalake": {"label": "DataLake"}}})
    render(sparse, {"lost": tmp_path / "no.png"}, out)
    page = out.read_text()
    assert "NO VERDICT" in page and "lost: figure not available" in page


def test_report_names_the_site_executor_images_and_where_jobs_ran(tmp_path: Path) -> None:
    run = {"site": "slurm", "rse": "SITE_SLURM_DISK", "executor": "slurm", "profile": "p",
           "images": [{"family": "dp3", "reference": "/img/dp3", "digest": "sha256:abc"}],
           "jobs": [{"rule": "flag", "slurm_job": "17", "node": "localhost",
                     "state": "COMPLETED"}]}
    verdict = {"equivalent": True, "products": [], "site": {"datalake": run, "local": run}}
    render(Verdict.from_json(verdict), {}, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    section = page[page.index("<h2>Site</h2>"):]
    for text in ("executor <b>slurm</b>", "SITE_SLURM_DISK", "sha256:abc", "<td>17</td>",
                 "<td>localhost</td>", "<h3>local run</h3>"):
        assert text in section, text

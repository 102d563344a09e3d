"""Pure logic of the pipeline stages: parsets, WSClean arguments, cross-match, scores, I/O."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lofar_datalake.pipeline import crossmatch, flagstats, imaging, parsets, solutions, tools
from lofar_datalake.pipeline.jobs import logged
from lofar_datalake.pipeline.unpack import unpack_ms
from lofar_datalake.simulate.sky import Source


def test_flag_parset_has_one_preflagger_per_criterion() -> None:
    p = parsets.flag_parset(
        Path("in.MS"), Path("out.MS"), Path("s.lua"),
        {"autocorrelations": True, "channels": ["0..1", 63], "baseline": "[[RS508HBA,*]]"},
        threads=2,
    )  # fmt: skip
    assert p["steps"] == ["flagauto", "flagchan", "flagbl", "aoflag"]
    assert p["flagauto.corrtype"] == "auto"
    assert p["flagchan.chan"] == ["0..1", "63"]
    assert p["flagbl.baseline"] == "[[RS508HBA,*]]"
    assert p["aoflag.strategy"] == "s.lua" and p["numthreads"] == 2
    bare = parsets.flag_parset(Path("a"), Path("b"), Path("s.lua"), {"autocorrelations": False})
    assert bare["steps"] == ["aoflag"]


def test_average_and_apply_parsets() -> None:
    avg = parsets.average_parset(Path("a.MS"), Path("b.MS"), 4, 2)
    assert (avg["avg.type"], avg["avg.freqstep"], avg["avg.timestep"]) == ("averager", 4, 2)
    app = parsets.applycal_parset(Path("a.MS"), Path("b.MS"), Path("cal.h5"))
    assert app["apply.steps"] == ["amp", "phase"]
    assert app["apply.amp.correction"] == "amplitude000"
    assert app["apply.phase.correction"] == "phase000"
    assert app["msout"] == "b.MS"


def test_calibrate_parset_writes_only_solutions() -> None:
    p = parsets.calibrate_parset(
        Path("cal.MS"), Path("cal.h5"), Path("cal.skymodel"), {"mode": "diagonal", "solint": 2}
    )
    assert p["msout"] == ""  # never rewrite the input Measurement Set
    assert p["cal.type"] == "ddecal" and p["cal.mode"] == "diagonal" and p["cal.solint"] == 2
    assert p["cal.sourcedb"] == "cal.skymodel" and p["cal.h5parm"] == "cal.h5"
    assert p["cal.usebeammodel"] is False


def test_format_parset() -> None:
    text = tools.format_parset({"steps": ["a", "b"], "x.flag": True, "n": 3, "msout": ""})
    assert text == "steps=[a,b]\nx.flag=true\nn=3\nmsout=\n"


def test_tool_env_pins_openblas_and_casarc(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CASARCFILES", raising=False)
    env = tools.tool_env(tmp_path / "job.casarc")
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert "measures.directory:" in Path(env["CASARCFILES"]).read_text()


def test_wsclean_args() -> None:
    settings = {
        "size": 512, "scale_arcsec": 4.0, "weighting": "briggs", "robust": -0.5, "niter": 100,
        "mgain": 0.8, "auto_threshold": 3.0, "auto_mask": 5.0, "taper_arcsec": 0,
        "extra_args": ["-multiscale"],
    }  # fmt: skip
    args = imaging.wsclean_args([Path("a.MS"), Path("b.MS")], Path("out/img"), settings, 2,
                                Path("tmp"))  # fmt: skip
    joined = " ".join(args)
    assert "-size 512 512" in joined and "-scale 4.0asec" in joined
    assert "-weight briggs -0.5" in joined and "-pol I" in joined and "-j 2" in joined
    assert args[-3:] == ["-multiscale", "a.MS", "b.MS"]
    with pytest.raises(ValueError, match="weighting"):
        imaging.wsclean_args([], Path("x"), settings | {"weighting": "robust"}, 1, Path("t"))


def _truth() -> list[Source]:
    return [
        Source("A", 10.0, 50.0, 1.0, 0.0, 150e6),
        Source("B", 10.1, 50.0, 0.5, -1.0, 150e6),
        Source("C", 10.2, 50.2, 0.01, 0.0, 150e6),
    ]


def test_crossmatch_and_summary() -> None:
    one_arcsec = 1 / 3600
    ra = np.array([10.0 + one_arcsec / np.cos(np.radians(50)), 10.1, 11.0])
    dec = np.array([50.0, 50.0 + 2 * one_arcsec, 50.0])
    flux = np.array([1.02, 0.5 * 2**-1.0, 5.0])
    matches = crossmatch.crossmatch(_truth(), ra, dec, flux, 300e6, radius_arcsec=10)
    by_name = {m.name: m for m in matches}
    assert by_name["A"].found and by_name["A"].separation_arcsec == pytest.approx(1.0, rel=1e-3)
    assert by_name["A"].flux_ratio == pytest.approx(1.02)
    assert by_name["B"].true_flux_jy == pytest.approx(0.25)  # at the image frequency
    assert by_name["B"].flux_ratio == pytest.approx(1.0)
    assert not by_name["C"].found
    s = crossmatch.summary(matches, rms_jy=0.002, detect_sigma=10)
    assert (s["n_true"], s["n_bright"], s["n_bright_found"]) == (3, 2, 2)
    assert s["max_flux_error"] == pytest.approx(0.02)
    assert s["max_separation_arcsec"] == pytest.approx(2.0, rel=1e-3)


def test_crossmatch_uses_each_found_source_once() -> None:
    truth = [Source("A", 10.0, 50.0, 1.0, 0, 150e6), Source("B", 10.0, 50.001, 0.5, 0, 150e6)]
    matches = crossmatch.crossmatch(truth, np.array([10.0]), np.array([50.0005]),
                                    np.array([1.0]), 150e6, 10)  # fmt: skip
    assert [m.found for m in matches] == [True, False]  # the brighter one claims it


def test_image_rms_is_robust() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.003, (200, 200))
    img[100, 100] = 50.0
    img[0, :10] = np.nan
    assert crossmatch.image_rms(img) == pytest.approx(0.003, rel=0.05)


def test_flag_scores() -> None:
    mask = np.zeros((10, 4), dtype=bool)
    mask[2, :] = True  # a broadband burst
    flags = np.zeros((10, 3, 4), dtype=bool)
    flags[2, :, :3] = True  # misses one channel of it
    flags[5, 0, 0] = True  # one false flag
    s = flagstats.scores(flags, mask)
    assert s["recall"] == pytest.approx(9 / 12)
    assert s["false_flag_fraction"] == pytest.approx(1 / 108)
    with pytest.raises(ValueError):
        flagstats.scores(flags, mask[:, :2])


def _write_h5parm(path: Path, amp: np.ndarray, phase: np.ndarray, times: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as h5:
        ss = h5.create_group("sol000")
        for name, val in (("amplitude000", amp), ("phase000", phase)):
            st = ss.create_group(name)
            st["val"] = val[:, None, :, None, :]
            st["val"].attrs["AXES"] = np.bytes_(b"time,freq,ant,dir,pol")
            st["weight"] = np.ones_like(st["val"])
            st["time"] = times
            st["freq"] = np.array([150e6])
            st["ant"] = np.array([b"CS001HBA0", b"RS106HBA"])
            st["dir"] = np.array([b"[cal]"])
            st["pol"] = np.array([b"XX", b"YY"])


def test_solutions_compare_ignores_a_common_phase(tmp_path: Path) -> None:
    times = np.arange(5) * 60.0
    true = np.ones((5, 2, 2), dtype=complex) * np.array([1.1, 0.9])[None, :, None]
    true = true * np.exp(1j * np.array([0.3, -1.2])[None, :, None])
    solved = true * 1.01 * np.exp(1j * 0.7)  # 1 % high, phases shifted by one constant
    _write_h5parm(tmp_path / "s.h5", np.abs(solved), np.angle(solved), times)
    sol = solutions.read_h5parm(tmp_path / "s.h5")
    assert sol.gains.shape == (5, 1, 2, 2) and sol.stations == ["CS001HBA0", "RS106HBA"]
    s = solutions.compare(sol, times, ["CS001HBA0", "RS106HBA"], true)
    assert s["amplitude_ratio_median"] == pytest.approx(1.01)
    assert s["phase_rms_deg"] == pytest.approx(0.0, abs=1e-6)
    # the truth may list more stations, in another order: compare() maps them by name
    shuffled = solutions.compare(sol, times, ["RS106HBA", "X", "CS001HBA0"], true[:, [1, 0, 0]])
    assert shuffled == s


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unpack_ms(tmp_path: Path) -> None:
    _tar(tmp_path / "a.tar", {"L1_SB000_uv.MS/table.dat": b"x", "L1_SB000_uv.MS/SUB/t": b"y"})
    out = unpack_ms(tmp_path / "a.tar", tmp_path / "work" / "renamed.MS")
    assert (out / "table.dat").read_bytes() == b"x" and (out / "SUB" / "t").exists()
    _tar(tmp_path / "two.tar", {"A.MS/table.dat": b"", "B.MS/table.dat": b""})
    with pytest.raises(ValueError, match="one Measurement Set"):
        unpack_ms(tmp_path / "two.tar", tmp_path / "x.MS")
    _tar(tmp_path / "evil.tar", {"A.MS/../../evil": b""})
    with pytest.raises(ValueError, match="refusing member"):
        unpack_ms(tmp_path / "evil.tar", tmp_path / "y.MS")
    assert not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("has_filters", [True, False])
def test_unpack_ms_refuses_links_with_and_without_tar_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_filters: bool
) -> None:
    # Python before 3.11.4 (Debian 12's, in the stage images) has no extraction filters.
    if not has_filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with tarfile.open(tmp_path / "link.tar", "w") as tar:
        for name, data in {"A.MS/table.dat": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("A.MS/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(ValueError, match=r"refusing member 'A\.MS/passwd'"):
        unpack_ms(tmp_path / "link.tar", tmp_path / "z.MS")
    _tar(tmp_path / "ok.tar", {"A.MS/table.dat": b"x", "A.MS/SUB/t": b"y"})
    assert (unpack_ms(tmp_path / "ok.tar", tmp_path / "ok.MS") / "SUB" / "t").read_bytes() == b"y"


def test_logged_keeps_the_traceback(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "job.log"
    with pytest.raises(RuntimeError), logged(str(log)):
        print("starting")
        raise RuntimeError("boom")
    text = log.read_text()
    assert "starting" in text and "RuntimeError: boom" in text

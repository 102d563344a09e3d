"""Fixtures shared by unit tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from lofar_datalake.simulate.observation import SimulationParams, ms_name, simulate


@pytest.fixture()
def key() -> RSAKey:
    """A fresh RS256 signing key with its `kid`, for tokens the tests make."""
    made = RSAKey.generate_key(2048, private=True)
    made.ensure_kid()
    return made


@pytest.fixture()
def credential(tmp_path: Path) -> Path:
    """A researcher's Rucio password in a private file, as the researchers file names it."""
    path = tmp_path / "alice.secret"
    path.write_text("rucio-password\n")
    path.chmod(0o600)
    return path


# Three sources out to 2.2 deg (past the station beam's half-power radius), an hour around
# transit, through the beam: for the tests of what the pipeline does with the beam.
BEAM_FIELD = SimulationParams(
    stations=["CS001HBA0", "CS002HBA0", "RS106HBA", "RS503HBA"], n_channels=4, duration_h=1.0,
    n_sources=3, field_radius_deg=2.2, min_separation_deg=0.5, sky_seed=21, sefd_jy=0.0,
    rfi_occupancy=0.0, station_beam=True,
)  # fmt: skip


@pytest.fixture(scope="session")
def beam_field(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`BEAM_FIELD` simulated: its directory, and its target's Measurement Set unpacked."""
    out = simulate(BEAM_FIELD, tmp_path_factory.mktemp("beam-field"))
    name = ms_name(BEAM_FIELD.target_obsid, 0)
    with tarfile.open(out / f"{name}.tar") as tar:
        tar.extractall(out, filter="data")
    return out, out / name

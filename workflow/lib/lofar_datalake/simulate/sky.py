"""Point-source skies: the calibrator model, random target fields, and their text formats."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Source:
    """An unpolarised point source with a power-law spectrum."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float  # Stokes I at ref_freq_hz
    spectral_index: float
    ref_freq_hz: float

    def flux_at(self, freq_hz: float | np.ndarray) -> float | np.ndarray:
        return self.flux_jy * (np.asarray(freq_hz) / self.ref_freq_hz) ** self.spectral_index


def lmn(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, float, float]:
    """Direction cosines (rad in, dimensionless out) of (ra, dec) about the phase centre."""
    dra = ra - ra0
    ll = math.cos(dec) * math.sin(dra)
    mm = math.sin(dec) * math.cos(dec0) - math.cos(dec) * math.sin(dec0) * math.cos(dra)
    return ll, mm, math.sqrt(max(0.0, 1.0 - ll * ll - mm * mm))


def offset_position(ra0: float, dec0: float, ll: float, mm: float) -> tuple[float, float]:
    """Inverse of `lmn` (SIN projection): (ra, dec) in rad."""
    nn = math.sqrt(1.0 - ll * ll - mm * mm)
    dec = math.asin(mm * math.cos(dec0) + nn * math.sin(dec0))
    ra = ra0 + math.atan2(ll, nn * math.cos(dec0) - mm * math.sin(dec0))
    return ra % (2 * math.pi), dec


def random_field(
    seed: int,
    ra_deg: float,
    dec_deg: float,
    n_sources: int,
    radius_deg: float,
    flux_range_jy: tuple[float, float],
    min_separation_deg: float,
    ref_freq_hz: float,
) -> list[Source]:
    """`n_sources` separated point sources, uniform within `radius_deg`, log-uniform in flux."""
    rng = np.random.default_rng(seed)
    ra0, dec0 = math.radians(ra_deg), math.radians(dec_deg)
    offsets: list[tuple[float, float]] = []
    tries = 0
    while len(offsets) < n_sources:
        tries += 1
        if tries > 10000:
            raise ValueError("cannot place the sources: lower n_sources or min_separation_deg")
        r = math.radians(radius_deg) * math.sqrt(rng.uniform(0.02, 1.0))
        phi = rng.uniform(0, 2 * math.pi)
        lm = (r * math.cos(phi), r * math.sin(phi))
        sep = math.radians(min_separation_deg)
        if all(math.hypot(lm[0] - o[0], lm[1] - o[1]) > sep for o in offsets):
            offsets.append(lm)
    lo, hi = flux_range_jy
    sources = []
    for i, (ll, mm) in enumerate(offsets):
        ra, dec = offset_position(ra0, dec0, ll, mm)
        sources.append(
            Source(
                name=f"S{i:02d}",
                ra_deg=math.degrees(ra),
                dec_deg=math.degrees(dec),
                flux_jy=float(math.exp(rng.uniform(math.log(lo), math.log(hi)))),
                spectral_index=float(rng.normal(-0.7, 0.1)),
                ref_freq_hz=ref_freq_hz,
            )
        )
    return sources


def as_surveyed(
    sources: list[Source], seed: int, position_error_arcsec: float, flux_error: float
) -> list[Source]:
    """`sources` as a survey catalogue lists them: each position off by a Gaussian error of
    `position_error_arcsec` rms per coordinate, each flux by a fraction `flux_error` rms (TGSS
    ADR: ~1-2 arcsec, ~10 % flux scale). Its own random stream: the sky itself is unchanged."""
    rng = np.random.default_rng([seed, 0x5E])
    surveyed = []
    for s in sources:
        dx, dy = np.radians(rng.normal(0.0, position_error_arcsec, 2) / 3600.0)
        ra, dec = math.radians(s.ra_deg), math.radians(s.dec_deg)
        ra_s, dec_s = offset_position(ra, dec, float(dx), float(dy))
        flux = s.flux_jy * max(0.1, 1.0 + float(rng.normal(0.0, flux_error)))
        surveyed.append(
            Source(s.name, math.degrees(ra_s), math.degrees(dec_s), flux, s.spectral_index,
                   s.ref_freq_hz)
        )  # fmt: skip
    return surveyed


def _sexagesimal(value: float, hours: bool) -> str:
    """RA as hh:mm:ss.sss, Dec as +dd.mm.ss.sss (the makesourcedb convention)."""
    sign = "-" if value < 0 else "+"
    v = abs(value) / 15.0 if hours else abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = (v - d - m / 60) * 3600
    if hours:
        return f"{d:02d}:{m:02d}:{s:09.6f}"
    return f"{sign}{d:02d}.{m:02d}.{s:09.6f}"


def write_skymodel(path: Path, sources: list[Source]) -> None:
    """DP3/makesourcedb text sky model with one point source per line."""
    lines = [
        "FORMAT = Name, Type, Ra, Dec, I, ReferenceFrequency='150e6', "
        "SpectralIndex='[]', LogarithmicSI='true'",
    ]
    for s in sources:
        lines.append(
            f"{s.name}, POINT, {_sexagesimal(s.ra_deg, True)}, {_sexagesimal(s.dec_deg, False)}, "
            f"{s.flux_jy:.6f}, {s.ref_freq_hz:.1f}, [{s.spectral_index:.4f}]"
        )
    path.write_text("\n".join(lines) + "\n")


def write_sources_csv(path: Path, sources: list[Source]) -> None:
    names = [f.name for f in fields(Source)]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for s in sources:
            writer.writerow(asdict(s))


def read_sources_csv(path: Path) -> list[Source]:
    with path.open(newline="") as fh:
        return [
            Source(
                name=row["name"],
                ra_deg=float(row["ra_deg"]),
                dec_deg=float(row["dec_deg"]),
                flux_jy=float(row["flux_jy"]),
                spectral_index=float(row["spectral_index"]),
                ref_freq_hz=float(row["ref_freq_hz"]),
            )
            for row in csv.DictReader(fh)
        ]

"""Instrumental corruptions: drifting station gains, thermal noise and RFI."""

from __future__ import annotations

import numpy as np


def drifting_gains(
    rng: np.random.Generator, times: np.ndarray, nant: int, phases: bool = True
) -> np.ndarray:
    """(ntime, nant, 2) complex X/Y gains that drift slowly (hours) in amplitude and phase.

    Amplitudes scatter by ~15 % between stations and wander by up to 10 % over a few hours;
    phases start anywhere and wander by up to ~1 rad: the regime a flux calibrator solves
    for every minute or so without ambiguity. Without `phases` the gains are real (the same
    random numbers are drawn, so everything drawn after them stays the same).
    """
    t = (times - times[0])[:, None, None] / 3600.0  # h
    shape = (1, nant, 2)
    amp0 = rng.uniform(0.8, 1.2, shape)
    amp_var = rng.uniform(0.0, 0.1, shape)
    amp_period = rng.uniform(3.0, 10.0, shape)
    amp_phase = rng.uniform(0, 2 * np.pi, shape)
    amp = amp0 * (1 + amp_var * np.sin(2 * np.pi * t / amp_period + amp_phase))
    ph0 = rng.uniform(-np.pi, np.pi, shape)
    ph_var = rng.uniform(0.0, 1.0, shape)
    ph_period = rng.uniform(1.0, 4.0, shape)
    ph_phase = rng.uniform(0, 2 * np.pi, shape)
    phase = ph0 + ph_var * np.sin(2 * np.pi * t / ph_period + ph_phase)
    return amp * np.exp(1j * phase) if phases else amp.astype(np.complex128)


def rfi_events(
    rng: np.random.Generator, ntime: int, nchan: int, occupancy: float
) -> tuple[np.ndarray, np.ndarray]:
    """A time-frequency RFI mask and the RFI amplitude (in units of the noise sigma) per cell.

    Three kinds, as seen at LOFAR: persistent narrow-band transmitters (a channel or two for a
    long stretch), broad-band bursts (all channels, one or two timeslots) and short narrow-band
    blips. Events are added until `occupancy` of the plane is covered.
    """
    mask = np.zeros((ntime, nchan), dtype=bool)
    amp = np.zeros((ntime, nchan))
    while mask.mean() < occupancy:
        kind = rng.choice(["narrow", "burst", "blip"], p=[0.3, 0.3, 0.4])
        strength = float(np.exp(rng.uniform(np.log(5.0), np.log(50.0))))
        if kind == "narrow":
            c0 = int(rng.integers(0, nchan))
            c1 = min(nchan, c0 + int(rng.integers(1, 3)))
            t0 = int(rng.integers(0, ntime))
            t1 = min(ntime, t0 + int(rng.integers(ntime // 8, ntime // 2 + 1)))
        elif kind == "burst":
            c0, c1 = 0, nchan
            t0 = int(rng.integers(0, ntime))
            t1 = min(ntime, t0 + int(rng.integers(1, 3)))
        else:
            c0 = int(rng.integers(0, nchan))
            c1 = min(nchan, c0 + int(rng.integers(1, 4)))
            t0 = int(rng.integers(0, ntime))
            t1 = min(ntime, t0 + int(rng.integers(1, 6)))
        mask[t0:t1, c0:c1] = True
        amp[t0:t1, c0:c1] = np.maximum(amp[t0:t1, c0:c1], strength)
    return mask, amp


def add_rfi(
    rng: np.random.Generator,
    data: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    amp: np.ndarray,
    sigma: float,
) -> None:
    """Add the RFI of `amp` (ntime, nchan) to cross-correlations of `data` (ntime, nbl, nchan, 4).

    Every station picks the interferer up with its own coupling and phase, so each baseline sees
    it with a different amplitude and phase (and a different one in each correlation).
    """
    nant = int(max(a1.max(), a2.max())) + 1
    coupling = rng.uniform(0.7, 1.3, nant) * np.exp(1j * rng.uniform(0, 2 * np.pi, nant))
    per_bl = coupling[a1] * np.conj(coupling[a2])
    per_bl[a1 == a2] = 0.0  # autocorrelations are flagged by every LOFAR pipeline anyway
    pol = np.exp(1j * rng.uniform(0, 2 * np.pi, 4)) * rng.uniform(0.5, 1.0, 4)
    ntime, nchan = amp.shape
    jitter = np.exp(1j * rng.uniform(0, 2 * np.pi, (ntime, 1, nchan, 1)))
    data += (sigma * amp)[:, None, :, None] * jitter * per_bl[None, :, None, None] * pol


def add_noise(rng: np.random.Generator, data: np.ndarray, sigma: float) -> None:
    """Complex Gaussian noise, `sigma` per real and imaginary part of every correlation."""
    data += (rng.normal(0.0, sigma, data.shape) + 1j * rng.normal(0.0, sigma, data.shape)).astype(
        data.dtype
    )


def noise_sigma(sefd_jy: float, chan_width_hz: float, interval_s: float) -> float:
    """Radiometer equation for one correlation of two identical stations, per real part."""
    return sefd_jy / np.sqrt(2.0 * chan_width_hz * interval_s)

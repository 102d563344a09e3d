"""One check per comparison method: (reference, candidate, params) -> Outcome.

A file that cannot be read as its type raises `Unreadable`; `equivalence` turns that, and any
other error, into a not-equivalent result with the message as its summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from datalake_core.checksums import sha256_of_file

from .catalogues import check_catalogue
from .images import check_fits_image
from .outcome import Metrics, Outcome, load, relative_diff, within

Check = Callable[[Path, Path, dict[str, Any]], Outcome]


def check_bytes(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    sums = (load("reference", "file", sha256_of_file, ref),
            load("candidate", "file", sha256_of_file, cand))
    sizes = ref.stat().st_size, cand.stat().st_size
    metrics: Metrics = {
        "sha256_reference": sums[0],
        "sha256_candidate": sums[1],
        "bytes_reference": sizes[0],
        "bytes_candidate": sizes[1],
    }
    if sums[0] == sums[1]:
        return Outcome(True, f"sha256 identical ({sizes[0]} bytes)", metrics)
    return Outcome(False, f"sha256 differs ({sizes[0]} vs {sizes[1]} bytes)", metrics)


def check_ignore(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    return Outcome(True, f"not compared: {params['reason']}")


def _read_h5_datasets(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    """Every dataset of an HDF5 file by name, with its AXES attribute ('' if none). Other
    attributes are not compared: DP3 stamps its HISTORY with the creation time."""
    import h5py  # only needed for solution files

    out: dict[str, tuple[np.ndarray, str]] = {}
    with h5py.File(path, "r") as h5:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                axes = obj.attrs.get("AXES", b"")
                out[name] = (
                    np.asarray(obj[()]),
                    axes.decode() if isinstance(axes, bytes) else str(axes),
                )

        h5.visititems(visit)
    return out


def _floats(values: np.ndarray) -> list[np.ndarray]:
    """The floating-point content of an array: complex as real and imaginary parts, compound
    records (h5parm antenna and source tables) field by field; empty if there is none."""
    if values.dtype.names:
        return [v for name in values.dtype.names for v in _floats(values[name])]
    if values.dtype.kind == "c":
        return [values.real.astype(float), values.imag.astype(float)]
    return [values.astype(float)] if values.dtype.kind == "f" else []


def _exact_parts_differ(ref: np.ndarray, cand: np.ndarray) -> bool:
    """Whether the non-float content (names, integers, strings) differs."""
    if ref.dtype.names:
        return any(_exact_parts_differ(ref[n], cand[n]) for n in ref.dtype.names)
    return ref.dtype.kind not in "fc" and not np.array_equal(ref, cand)


def _h5_structure_mismatch(
    name: str, r: tuple[np.ndarray, str], c: tuple[np.ndarray, str]
) -> str | None:
    if r[0].shape != c[0].shape:
        return f"{name}: shape {r[0].shape} vs {c[0].shape}"
    if r[1] != c[1]:
        return f"{name}: AXES {r[1]!r} vs {c[1]!r}"
    if r[0].dtype != c[0].dtype:
        return f"{name}: dtype {r[0].dtype} vs {c[0].dtype}"
    if _exact_parts_differ(r[0], c[0]):
        return f"{name}: non-numeric values differ"
    for rv, cv in zip(_floats(r[0]), _floats(c[0]), strict=True):
        if not np.array_equal(np.isnan(rv), np.isnan(cv)):
            return f"{name}: NaN (unsolved) at different positions"
    return None


def check_h5parm(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    atol, rtol = float(params["atol"]), float(params["rtol"])
    r = load("reference", "HDF5", _read_h5_datasets, ref)
    c = load("candidate", "HDF5", _read_h5_datasets, cand)
    if set(r) != set(c):
        only = sorted(set(r) ^ set(c))
        return Outcome(False, f"datasets in one file only: {', '.join(only[:5])}")
    max_diff, worst, n_values = 0.0, "", 0
    beyond: dict[str, int] = {}  # dataset -> number of values beyond the tolerance
    for name in sorted(r):
        problem = _h5_structure_mismatch(name, r[name], c[name])
        if problem:
            return Outcome(False, problem, {"n_datasets": len(r)})
        for rv, cv in zip(_floats(r[name][0]), _floats(c[name][0]), strict=True):
            ok = within(rv, cv, atol, rtol)
            n_values += ok.size
            if not ok.all():
                beyond[name] = beyond.get(name, 0) + int(ok.size - ok.sum())
            diff = float(np.nanmax(np.abs(cv - rv), initial=0.0))
            if diff > max_diff:
                max_diff, worst = diff, name
    n_beyond = sum(beyond.values())
    metrics: Metrics = {
        "n_datasets": len(r),
        "n_values": n_values,
        "max_abs_diff": max_diff,
        "worst_dataset": worst,
        "n_values_beyond": n_beyond,
    }
    tolerance = f"atol {atol:g} + rtol {rtol:g}·|ref|"
    if n_beyond:
        where = ", ".join(f"{n} ({k})" for n, k in beyond.items())
        return Outcome(
            False,
            f"{n_beyond} of {n_values} values beyond {tolerance} in {where}; "
            f"max |diff| {max_diff:.2g} in {worst}",
            metrics,
        )
    return Outcome(
        True,
        f"{len(r)} datasets, {n_values} values: max |diff| {max_diff:.2g} "
        f"{f'(in {worst}) ' if max_diff else ''}within {tolerance}",
        metrics,
    )


class _StructureDiffers(Exception):
    pass


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_numbers(r: object, c: object, where: str, out: list[tuple[str, float, float]]) -> None:
    """Collect the pairs of numbers of two JSON documents; raise on any other difference."""
    if _is_number(r) and _is_number(c):
        out.append((where or "/", float(r), float(c)))  # type: ignore[arg-type]
    elif isinstance(r, dict) and isinstance(c, dict):
        if set(r) != set(c):
            keys = ", ".join(sorted(set(r) ^ set(c))[:5])
            raise _StructureDiffers(f"{where or '/'}: keys in one file only: {keys}")
        for key in sorted(r):
            _json_numbers(r[key], c[key], f"{where}/{key}", out)
    elif isinstance(r, list) and isinstance(c, list):
        if len(r) != len(c):
            raise _StructureDiffers(f"{where or '/'}: {len(r)} vs {len(c)} items")
        for i, (rv, cv) in enumerate(zip(r, c, strict=True)):
            _json_numbers(rv, cv, f"{where}/{i}", out)
    elif type(r) is not type(c) or r != c:
        raise _StructureDiffers(f"{where or '/'}: {json.dumps(r)[:60]} vs {json.dumps(c)[:60]}")


def _numbers_outcome(
    pairs: list[tuple[str, float, float]], atol: float, rtol: float, what: str
) -> Outcome:
    """Verdict on (where, reference, candidate) number pairs that must agree within tolerance."""
    rv = np.array([p[1] for p in pairs], dtype=float)
    cv = np.array([p[2] for p in pairs], dtype=float)
    ok = within(rv, cv, atol, rtol)
    max_rel = float(np.nanmax(relative_diff(rv, cv), initial=0.0))
    metrics: Metrics = {
        "n_numbers": len(pairs),
        "n_beyond": int((~ok).sum()),
        "max_abs_diff": float(np.nanmax(np.abs(cv - rv), initial=0.0)),
        "max_rel_diff": max_rel,
    }
    if not ok.all():
        where, a, b = pairs[int(np.argmin(ok))]
        return Outcome(
            False,
            f"{where}: {a:.7g} vs {b:.7g} beyond atol {atol:g} + rtol "
            f"{rtol:g}·|ref| ({metrics['n_beyond']} number(s) beyond)",
            metrics,
        )
    return Outcome(
        True,
        f"{what}; {len(pairs)} numbers, max rel diff {max_rel:.2g} "
        f"within atol {atol:g} + rtol {rtol:g}·|ref|",
        metrics,
    )


def check_json_numeric(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    r = load("reference", "JSON", lambda p: json.loads(p.read_text(encoding="utf-8")), ref)
    c = load("candidate", "JSON", lambda p: json.loads(p.read_text(encoding="utf-8")), cand)
    pairs: list[tuple[str, float, float]] = []
    try:
        _json_numbers(r, c, "", pairs)
    except _StructureDiffers as exc:
        return Outcome(False, f"differs at {exc}")
    return _numbers_outcome(pairs, float(params["atol"]), float(params["rtol"]), "same keys")


# A decimal number as printed: sign, digits with an optional point, optional exponent.
_NUMBER = re.compile(r"([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)")


def _last_digit(token: str) -> float:
    """The value of one unit in the last printed digit: '3.33961e+00' -> 1e-05, '12' -> 1."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _text_numbers(ref: str, cand: str, slack: int) -> list[tuple[str, float, float]]:
    """Pairs of numbers of two texts that must agree elsewhere; rounding flips of at most
    `slack` units in the last printed digit come back as equal pairs."""
    r_lines, c_lines = ref.splitlines(), cand.splitlines()
    if len(r_lines) != len(c_lines):
        raise _StructureDiffers(f"{len(r_lines)} vs {len(c_lines)} lines")
    pairs = []
    for number, (r_line, c_line) in enumerate(zip(r_lines, c_lines, strict=True), start=1):
        r_parts, c_parts = _NUMBER.split(r_line), _NUMBER.split(c_line)
        # split() with a group alternates text (even indices) and numbers (odd indices)
        if len(r_parts) != len(c_parts) or r_parts[::2] != c_parts[::2]:
            raise _StructureDiffers(f"line {number}: {r_line[:70]!r} vs {c_line[:70]!r}")
        for rt, ct in zip(r_parts[1::2], c_parts[1::2], strict=True):
            a, b = float(rt), float(ct)
            if abs(a - b) <= slack * max(_last_digit(rt), _last_digit(ct)) * (1 + 1e-9):
                b = a
            pairs.append((f"line {number}", a, b))
    return pairs


def check_text_numeric(ref: Path, cand: Path, params: dict[str, Any]) -> Outcome:
    r = load("reference", "text", lambda p: p.read_text(encoding="utf-8"), ref)
    c = load("candidate", "text", lambda p: p.read_text(encoding="utf-8"), cand)
    try:
        pairs = _text_numbers(r, c, int(params["last_digit_slack"]))
    except _StructureDiffers as exc:
        return Outcome(False, f"text differs: {exc}")
    lines = len(r.splitlines())
    return _numbers_outcome(
        pairs, float(params["atol"]), float(params["rtol"]), f"same text in {lines} lines"
    )


CHECKS: dict[str, Check] = {
    "bytes": check_bytes,
    "fits-image": check_fits_image,
    "catalogue": check_catalogue,
    "h5parm": check_h5parm,
    "json-numeric": check_json_numeric,
    "text-numeric": check_text_numeric,
    "ignore": check_ignore,
}

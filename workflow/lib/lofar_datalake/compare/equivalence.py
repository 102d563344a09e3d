"""Product equivalence of two result trees (the same workflow run on two copies of the inputs).

Every file of either tree is one product, compared by the first tolerance rule matching its
path. Nothing about a product escapes as an exception: a file that cannot be read as its type,
or is missing from one tree, is a not-equivalent result whose summary says why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .checks import CHECKS
from .outcome import Unreadable
from .rules import Rule, rule_for

# Used for a path no rule matches: the strictest comparison.
FALLBACK_RULE = Rule("*", "bytes", {})


@dataclass
class ProductResult:
    path: str  # relative to the tree roots, POSIX separators
    method: str
    equivalent: bool
    summary: str
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def product_paths(root: Path) -> set[str]:
    """Relative paths of the files under `root`, hidden files and directories (.snakemake)
    left out."""
    found: set[str] = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(directory).relative_to(root)
        found.update((rel / f).as_posix() for f in filenames if not f.startswith("."))
    return found


def compare_product(reference: Path, candidate: Path, relpath: str, rule: Rule) -> ProductResult:
    """One product, present in both trees, by its rule's method."""
    result = ProductResult(relpath, rule.method, False, "", {}, dict(rule.params))
    try:
        outcome = CHECKS[rule.method](reference, candidate, rule.params)
    except Unreadable as exc:
        result.summary = str(exc)
        return result
    except Exception as exc:  # a bug or an odd file must not cost the other products
        result.summary = f"comparison failed: {type(exc).__name__}: {exc}"
        return result
    result.equivalent, result.summary = outcome.equivalent, outcome.summary
    result.metrics = dict(outcome.metrics)
    return result


def compare_trees(
    reference: Path,
    candidate: Path,
    rules: list[Rule],
    *,
    exclude: Callable[[str], bool] | None = None,
) -> list[ProductResult]:
    """Every product of either tree, sorted by path. `exclude(relpath)` true leaves it out."""
    for root in (reference, candidate):
        if not Path(root).is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
    in_ref, in_cand = product_paths(Path(reference)), product_paths(Path(candidate))
    results = []
    for relpath in sorted(in_ref | in_cand):
        if exclude is not None and exclude(relpath):
            continue
        rule = rule_for(relpath, rules) or FALLBACK_RULE
        params = dict(rule.params)
        in_both = relpath in in_ref and relpath in in_cand
        missing = "missing in candidate" if relpath in in_ref else "missing in reference"
        if rule.method == "ignore":  # not compared, so its absence from one tree is no evidence
            summary = f"not compared: {params['reason']}" + ("" if in_both else f"; {missing}")
            results.append(ProductResult(relpath, rule.method, True, summary, {}, params))
        elif not in_both:
            results.append(ProductResult(relpath, rule.method, False, missing, {}, params))
        else:
            pair = Path(reference, relpath), Path(candidate, relpath)
            results.append(compare_product(*pair, relpath, rule))
    return results


def _json_safe(value: object) -> object:
    """NaN and infinities as strings: the verdict must be strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def to_json(results: list[ProductResult]) -> list[dict[str, Any]]:
    """The products of the verdict, as JSON-ready dicts."""
    return [_json_safe(asdict(r)) for r in results]  # type: ignore[misc]

"""Tolerance rules: which comparison applies to which product, with which tolerances.

A rules file is YAML with one list, `rules`; each entry has `pattern` (fnmatch against the
product's path relative to the results root; the first match wins), `method` and `params`.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Project root: workflow/lib/lofar_datalake/compare -> up four levels.
DEFAULT_RULES_FILE = Path(__file__).resolve().parents[4] / "config" / "compare.yaml"

# For each method: required params and optional params with their defaults.
NUMBER, COUNT, TEXT = "non-negative number", "non-negative integer", "non-empty string"
_TOLERANCES = {"atol": NUMBER, "rtol": NUMBER}
METHOD_PARAMS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "bytes": ({}, {}),
    "fits-image": (_TOLERANCES, {}),
    "catalogue": ({"match_arcsec": NUMBER, "flux_rtol": NUMBER}, {"max_unmatched": 0}),
    "h5parm": (_TOLERANCES, {}),
    "json-numeric": (_TOLERANCES, {}),
    "text-numeric": (_TOLERANCES, {"last_digit_slack": 1}),
    "ignore": ({"reason": TEXT}, {}),
}
_OPTIONAL_KINDS = {"max_unmatched": COUNT, "last_digit_slack": COUNT}
_RULE_KEYS = {"pattern", "method", "params"}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the key."""


@dataclass(frozen=True)
class Rule:
    pattern: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, relpath: str) -> bool:
        return fnmatch.fnmatchcase(relpath, self.pattern)


def _check_value(kind: str, value: object) -> bool:
    if kind == TEXT:
        return isinstance(value, str) and bool(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == COUNT:
        return isinstance(value, int) and value >= 0
    return math.isfinite(value) and value >= 0


def _parse_rule(entry: object, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise RulesError(f"{where}: expected a mapping with keys pattern, method, params")
    unknown = sorted(set(entry) - _RULE_KEYS)
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r} (allowed: pattern, method, params)")
    for key in ("pattern", "method"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise RulesError(f"{where}: missing or empty key {key!r}")
    method = entry["method"]
    if method not in METHOD_PARAMS:
        raise RulesError(
            f"{where}: key 'method': unknown method {method!r} (known: {', '.join(METHOD_PARAMS)})"
        )
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise RulesError(f"{where}: key 'params' must be a mapping")
    required, optional = METHOD_PARAMS[method]
    for key in params:
        if key not in required and key not in optional:
            allowed = ", ".join([*required, *optional]) or "none"
            raise RulesError(
                f"{where}: unknown param {key!r} for method {method} (allowed: {allowed})"
            )
    for key in required:
        if key not in params:
            raise RulesError(f"{where}: missing param {key!r} for method {method}")
    merged = {**optional, **params}
    for key, value in merged.items():
        kind = required.get(key) or _OPTIONAL_KINDS[key]
        if not _check_value(kind, value):
            raise RulesError(f"{where}: param {key!r} must be a {kind}, not {value!r}")
    return Rule(entry["pattern"], method, merged)


def parse_rules(data: object, source: str) -> list[Rule]:
    """Rules from parsed YAML; `source` names the file in error messages."""
    if not isinstance(data, dict) or "rules" not in data:
        raise RulesError(f"{source}: missing key 'rules' (a list of rules)")
    unknown = sorted(set(data) - {"rules"})
    if unknown:
        raise RulesError(f"{source}: unknown key {unknown[0]!r} at the top level")
    if not isinstance(data["rules"], list) or not data["rules"]:
        raise RulesError(f"{source}: key 'rules' must be a non-empty list")
    return [_parse_rule(e, f"{source}: rule {i}") for i, e in enumerate(data["rules"])]


def load_rules(path: Path = DEFAULT_RULES_FILE) -> list[Rule]:
    """The rules of a YAML file (by default the shipped config/compare.yaml)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"{path}: cannot read rules: {exc}") from exc
    return parse_rules(data, str(path))


def rule_for(relpath: str, rules: list[Rule]) -> Rule | None:
    """The first rule whose pattern matches `relpath` (POSIX separators), or None."""
    return next((r for r in rules if r.matches(relpath)), None)


def rules_to_json(rules: list[Rule]) -> list[dict[str, Any]]:
    """The tolerance table of the verdict."""
    return [{"pattern": r.pattern, "method": r.method, "params": dict(r.params)} for r in rules]

"""Checking a submission before anything of it runs: where its workflow comes from, its files,
the DIDs it reads, and that Snakemake can parse it. Checking out a git repository is
git_checkout.py's.

Everything a submission brings is hostile input. A bad submission is refused with a
`SubmissionError`, whose message is what the researcher reads: it names the file, key, DID or
limit at fault and what to do. Other exceptions are the service's own problems. Unpacking an
uploaded archive is archive.py's, `unpack_archive` here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from . import archive as archives
from .archive import shown
from .bounded import run_bounded


class SubmissionError(ValueError):
    """A submission refused; the message is for the researcher."""


def unpack_archive(archive: Path, dest: Path, max_bytes: int, max_files: int = 10000) -> None:
    """archive.unpack_archive, its refusals as SubmissionError."""
    try:
        archives.unpack_archive(archive, dest, max_bytes, max_files)
    except archives.ArchiveError as e:
        raise SubmissionError(str(e)) from e


# --- the workflow's files ----------------------------------------------------------------------

SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")  # Snakemake's
CONFIG_MAX = 16 * 1024**2


def find_workflow(root: Path, snakefile: str | None, configfile: str) -> tuple[Path, Path]:
    """The Snakefile (`snakefile`, else where Snakemake looks by default) and the config file,
    both resolved and inside `root`; the config must be a YAML or JSON mapping."""
    base = root.resolve(strict=True)
    if snakefile:
        found = _inside(base, snakefile, "Snakefile")
    else:
        candidates = [base / name for name in SNAKEFILES]
        hits = [c for c in candidates if c.is_file()]
        if not hits:
            raise SubmissionError(f"no Snakefile: looked for {', '.join(SNAKEFILES)} in the "
                                  "workflow's root; name yours in the submission")
        found = _inside(base, str(hits[0].relative_to(base)), "Snakefile")
    config = _inside(base, configfile, "config file")
    rel = config.relative_to(base)
    if config.stat().st_size > CONFIG_MAX:
        raise SubmissionError(f"config file {rel}: larger than {CONFIG_MAX // 1024**2} MiB; "
                              "data belongs in DIDs, not in the config")
    try:
        text = config.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SubmissionError(f"config file {rel}: not UTF-8 text ({e.reason} at byte "
                              f"{e.start})") from e
    try:
        data = json.loads(text) if config.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise SubmissionError(f"config file {rel}: not valid JSON: {e.msg} at line {e.lineno}, "
                              f"column {e.colno}") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SubmissionError(f"config file {rel}: not valid YAML: {e.problem or e}{where}") from e
    except (yaml.YAMLError, RecursionError) as e:
        raise SubmissionError(f"config file {rel}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SubmissionError(f"config file {rel}: must be a mapping of keys to values (as "
                              f"Snakemake's config is), not {type(data).__name__}")
    return found, config


def _inside(base: Path, relative: str, what: str) -> Path:
    """`relative` under `base`, resolved; refused if it is missing or resolves outside."""
    if not relative or "\x00" in relative or Path(relative).is_absolute():
        raise SubmissionError(f"{what} {shown(relative)}: give a path relative to the "
                              "workflow's root")
    try:
        path = (base / relative).resolve(strict=True)
    except FileNotFoundError as e:
        raise SubmissionError(f"{what} {shown(relative)}: not found in the workflow; paths are "
                              "relative to the workflow's root") from e
    except (OSError, RuntimeError) as e:  # a symlink loop, a name too long
        raise SubmissionError(f"{what} {shown(relative)}: cannot be read ({e})") from e
    if not path.is_relative_to(base):
        raise SubmissionError(f"{what} {shown(relative)}: leads outside the workflow's root; "
                              "it must be one of the workflow's own files")
    if not path.is_file():
        raise SubmissionError(f"{what} {shown(relative)}: not a regular file")
    return path


# --- DIDs --------------------------------------------------------------------------------------

# Rucio's own rules (rucio/common/schema/generic.py, rucio-clients 41): SCOPE and NAME.
SCOPE_MAX, NAME_MAX = 25, 250
SCOPE = re.compile(r"[a-zA-Z_\-.0-9]+")
NAME = re.compile(r"[/A-Za-z0-9][/A-Za-z0-9.\-_]*")
PROBLEMS_SHOWN = 50


def check_dids(dids: Sequence[str], scopes: Sequence[str]) -> list[str]:
    """The DIDs, each `scope:name`, stripped of surrounding blanks; refused, all bad ones
    named, if any is malformed, outside `scopes` or given twice, or if there are none."""
    if not dids:
        raise SubmissionError("no DIDs given: list the DIDs (scope:name) the workflow reads")
    problems, out, seen = [], [], set()
    for raw in dids:
        did = raw.strip()
        problem = _did_problem(did, scopes)
        if problem is None and did in seen:
            problem = "given more than once"
        if problem:
            problems.append(f"{shown(raw)}: {problem}")
        seen.add(did)
        out.append(did)
    if problems:
        more = len(problems) - PROBLEMS_SHOWN
        listed = "\n".join(f"  - {p}" for p in problems[:PROBLEMS_SHOWN])
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise SubmissionError(f"{len(problems)} of the {len(dids)} DIDs cannot be used:\n"
                              f"{listed}{tail}")
    return out


def _did_problem(did: str, scopes: Sequence[str]) -> str | None:
    scope, sep, name = did.partition(":")
    if not sep or not scope or not name:
        return "not scope:name"
    if len(scope) > SCOPE_MAX or not SCOPE.fullmatch(scope):
        return (f"the scope may have only A-Z a-z 0-9 . _ - and at most {SCOPE_MAX} characters "
                "(Rucio's rule)")
    if len(name) > NAME_MAX or not NAME.fullmatch(name):
        return (f"the name may have only A-Z a-z 0-9 / . _ -, must start with a letter, digit "
                f"or /, and have at most {NAME_MAX} characters (Rucio's rule)")
    if any(part in ("", ".", "..") for part in name.lstrip("/").split("/")):
        return "the name has an empty, '.' or '..' path segment (the DataLake plugin refuses it)"
    if scope not in scopes:
        yours = ", ".join(scopes) or "none"
        return f"scope {shown(scope)} is not one of yours ({yours})"
    return None


# --- parsing -----------------------------------------------------------------------------------

TAIL_LINES = 30


def check_parses(root: Path, snakefile: Path, configfile: Path, run_as: list[str],
                 env: Mapping[str, str], timeout_s: float = 120) -> None:
    """Snakemake lists the workflow's rules, run by `run_as` (sandbox.prefix) in `env`
    (sandbox.environment): parsing runs the Snakefile's Python, so it runs sandboxed. A failure
    is refused with the end of Snakemake's own error, paths made relative to the workflow."""
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.is_file():
        raise RuntimeError(f"{snakemake}: Snakemake is not installed beside the service")
    argv = [*run_as, str(snakemake), "--snakefile", str(snakefile), "--configfile",
            str(configfile), "--directory", str(root), "--list-rules"]
    # No batch system is needed to parse; without this the HTCondor bindings, where installed,
    # warn on every start and the warning would end up in the researcher's error.
    code, out = run_bounded(argv, cwd=root, env={"CONDOR_CONFIG": "/dev/null", **env},
                             timeout_s=timeout_s)
    rel = snakefile.resolve().relative_to(root.resolve())
    if code is None:
        raise SubmissionError(
            f"the workflow took longer than {timeout_s:g} s to parse (Snakemake reading {rel} and "
            "what it includes, with the config): parsing must not run the work; move it into rules")
    if code == 0:
        return
    first = out.lstrip().partition("\n")[0]
    # setpriv or bwrap (the container) could not start it: the service's problem, not theirs.
    failed = first.startswith(("setpriv: failed to execute", "bwrap: "))
    if run_as and code in (1, 126, 127) and failed:
        raise RuntimeError(f"the sandbox cannot start Snakemake ({first}): the service's venv "
                           "and its Python must be readable by the researchers' users")
    text = _relative_paths(out, root, env.get("HOME"))
    lines = [line[:500] for line in text.rstrip().splitlines()][-TAIL_LINES:]
    said = "\n".join(lines) or f"(no output; exit code {code})"
    raise SubmissionError(f"Snakemake cannot parse the workflow ({rel} with config "
                          f"{configfile.resolve().relative_to(root.resolve())}):\n{said}")


def _relative_paths(text: str, root: Path, home: str | None) -> str:
    """The service's own paths out of `text`: the workflow's become relative to its root."""
    swaps = {f"{r}/": "" for r in {str(root), str(root.resolve())}}
    swaps.update({str(r): "." for r in {str(root), str(root.resolve())}})
    if home:
        swaps[home] = "~"
    for old in sorted(swaps, key=len, reverse=True):
        text = text.replace(old, swaps[old])
    return text

"""Checking a submission before anything of it runs: where its workflow comes from, its files,
the DIDs it reads, and that Snakemake can parse it.

Everything a submission brings is hostile input. A bad submission is refused with a
`SubmissionError`, whose message is what the researcher reads: it names the file, key, DID or
limit at fault and what to do. Other exceptions are the service's own problems. Unpacking an
uploaded archive is archive.py's, `unpack_archive` here.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from . import archive as archives
from .archive import shown


class SubmissionError(ValueError):
    """A submission refused; the message is for the researcher."""


def unpack_archive(archive: Path, dest: Path, max_bytes: int, max_files: int = 10000) -> None:
    """archive.unpack_archive, its refusals as SubmissionError."""
    try:
        archives.unpack_archive(archive, dest, max_bytes, max_files)
    except archives.ArchiveError as e:
        raise SubmissionError(str(e)) from e


# --- git ---------------------------------------------------------------------------------------

COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names, in full
URL_MAX = 2048
# Infrastructure the service's git may need to reach a forge; none of it is the researcher's.
GIT_KEPT = ("PATH", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")  # in the authority only
_ANY_AT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/*)[^?#]*@")


def safe_url(url: str) -> str:
    """`url` without the user information of its authority (`user:token@`): a token or password
    must never reach a message or a record."""
    return _USERINFO.sub(r"\1", url)


def _masked(url: str) -> str:
    """A refused URL for its message: malformed, its authority may not be where git or curl
    would find it, so everything up to its last `@` goes, and its query: too much rather than
    too little."""
    return shown(_ANY_AT.sub(r"\1…@", re.split(r"[?#]", url, maxsplit=1)[0]))


def checkout(url: str, commit: str, dest: Path, timeout_s: float = 120,
             run_as: Sequence[str] = ()) -> None:
    """Check out `commit` of the git repository at `url` into `dest` (made if missing; it must
    be empty). Only https:// and file:// URLs (or an absolute path), and a commit in full.
    `run_as` (sandbox.prefix) runs git as the researcher's user, so a file:// URL reaches only
    what that user may read; `dest` must then be theirs already. The repository's history
    (.git) is not kept: what runs is the tree of that one commit."""
    git_url, scheme = _git_url(url)
    safe = safe_url(git_url)
    sha = commit.strip().lower()
    if not COMMIT.fullmatch(sha):
        raise SubmissionError(
            f"commit {shown(commit)} of {safe}: give the commit's full hash (40 hexadecimal "
            "digits, 64 for a SHA-256 repository), not a branch, a tag or an abbreviation: a "
            "commit is what makes the run reproducible")
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("git is not installed (scripts/install-system-deps.sh)")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest}: not empty; checkout needs an empty directory")
    try:
        _fetch(git, git_url, scheme, sha, dest, timeout_s, run_as)
    except BaseException:
        for entry in dest.iterdir():  # a refused checkout leaves nothing behind
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        raise


def _fetch(git: str, git_url: str, scheme: str, sha: str, dest: Path, timeout_s: float,
           run_as: Sequence[str]) -> None:
    safe = safe_url(git_url)
    deadline = time.monotonic() + timeout_s
    options = [
        "-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
        "-c", "protocol.ext.allow=never", "-c", "credential.helper=", "-c", "core.askPass=",
        "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
        "-c", "core.symlinks=false",  # a link in the tree becomes a file holding its target
        "-c", "submodule.recurse=false", "-c", "fetch.recurseSubmodules=false",
        "-c", "transfer.fsckObjects=true", "-c", "init.defaultBranch=main",
        "-c", "advice.detachedHead=false",
    ]
    with tempfile.TemporaryDirectory(prefix="ldl-git-home-") as home:
        Path(home).chmod(0o755)  # empty: no .netrc, no configuration; readable by run_as
        env = {k: os.environ[k] for k in GIT_KEPT if k in os.environ}
        env.update(HOME=home, LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1",
                   GIT_CONFIG_GLOBAL="/dev/null", GIT_PROTOCOL_FROM_USER="0")

        def run(*args: str) -> tuple[int, str]:
            left = deadline - time.monotonic()
            code, out = (None, "") if left <= 0 else _run_bounded(
                [*run_as, git, *options, *args], cwd=dest, env=env, timeout_s=left)
            if code is None:
                raise SubmissionError(
                    f"fetching {safe} at {sha} took longer than {timeout_s:g} s: check that the "
                    "repository is reachable, or upload the workflow as an archive")
            return code, _git_said(out, git_url, safe)

        code, said = run("init", "-q", ".")
        if code != 0:
            raise RuntimeError(f"git init in {dest} failed: {said}")
        code, said = run("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--depth=1",
                         "--", git_url, sha)
        if code != 0:
            code, said = run("ls-remote", "-q", "--", git_url, "HEAD")
            if code != 0:
                raise SubmissionError(
                    f"the repository {safe} could not be read (git said: {said}): check the URL "
                    "and that the repository is public (or the URL carries read access)")
            # Reachable: perhaps a server that hands out only its branches' tips; try them all.
            run("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--", git_url,
                "+refs/heads/*:refs/remotes/origin/*")
            code, _ = run("cat-file", "-e", f"{sha}^{{commit}}")
            if code != 0:
                raise SubmissionError(
                    f"commit {sha} is not in the repository {safe}: give the full hash of a "
                    "commit pushed to that repository")
        code, said = run("checkout", "-q", "--detach", sha)
        if code != 0:
            raise SubmissionError(f"commit {sha} of {safe} could not be checked out (git said: "
                                  f"{said})")
    shutil.rmtree(dest / ".git")


def _git_url(url: str) -> tuple[str, str]:
    """The URL git is given, and its scheme."""
    if len(url) > URL_MAX or any(c.isspace() or not c.isprintable() for c in url):
        raise SubmissionError(f"repository URL {_masked(url)}: spaces and control characters are "
                              f"not allowed, nor more than {URL_MAX} characters")
    if url.startswith("/"):
        url = Path(url).as_uri()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "file"):
        raise SubmissionError(
            f"repository URL {_masked(url)}: only https:// and file:// URLs (or an absolute path "
            "on the service's machine) are accepted, not ssh://, git://, http:// or git's ext:: "
            "transport")
    if parts.query or parts.fragment:
        raise SubmissionError(f"repository URL {_masked(url)}: no query (?) or "
                              "fragment (#) allowed")
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as e:  # (its words may quote a password: not shown)
        raise SubmissionError(f"repository URL {_masked(url)}: malformed (its host or port "
                              "cannot be read)") from e
    if scheme == "https" and not host:
        raise SubmissionError(f"repository URL {_masked(url)}: names no host")
    if scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
        raise SubmissionError(f"repository URL {_masked(url)}: a file:// URL must name "
                              "an absolute path on the service's machine (file:///path)")
    return url, scheme


def _git_said(out: str, url: str, safe: str) -> str:
    """git's complaint in one line, with any credentials of the URL taken out."""
    text = out.replace(url, safe)
    text = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]*@", r"\1", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return "; ".join((fatal or lines)[-2:])[:500] or "nothing"


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
OUTPUT_KEPT = 64 * 1024  # bytes of a child's output kept (the end); the rest is read and dropped
GRACE_S = 2.0  # after the command ends, how long what it left behind may still hold its output


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
    code, out = _run_bounded(argv, cwd=root, env={"CONDOR_CONFIG": "/dev/null", **env},
                             timeout_s=timeout_s)
    rel = snakefile.resolve().relative_to(root.resolve())
    if code is None:
        raise SubmissionError(
            f"the workflow took longer than {timeout_s:g} s to parse (Snakemake reading {rel} and "
            "what it includes, with the config): parsing must not run the work; move it into rules")
    if code == 0:
        return
    first = out.lstrip().partition("\n")[0]
    if run_as and code in (126, 127) and "failed to execute" in first:
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


def _run_bounded(argv: list[str], *, cwd: Path, env: Mapping[str, str],
                 timeout_s: float) -> tuple[int | None, str]:
    """Run `argv` in a process group of its own with its output (stdout and stderr, merged)
    kept to the last OUTPUT_KEPT bytes; whatever of the group is left at the end is killed.
    The exit code, or None if it ran past `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    tail = bytearray()
    timed_out, grace_end = False, None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if grace_end is None and proc.poll() is not None:
                    grace_end = now + GRACE_S  # ended; its leftovers may still hold the pipe
                limit = deadline if grace_end is None else min(grace_end, deadline)
                if now >= limit:
                    timed_out = grace_end is None
                    break
                if sel.select(timeout=min(limit - now, 0.5)):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break  # everyone closed it
                    tail += chunk
                    del tail[:-OUTPUT_KEPT]
        if not timed_out and proc.poll() is None:  # closed its output but still running
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = proc.wait()
        proc.stdout.close()
    return (None if timed_out else code), tail.decode("utf-8", "replace")

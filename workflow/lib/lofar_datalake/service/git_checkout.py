"""Checking out a researcher's git repository at one commit, as hostile input: https:// or
file:// URLs only, a full commit hash, no credential helpers, hooks or submodules, and no
credential from a URL in any message or record."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from .archive import shown
from .bounded import Stopped, run_bounded
from .runs import disk_bytes
from .submission import SubmissionError

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
             run_as: Sequence[str] = (), max_bytes: int | None = None) -> None:
    """Check out `commit` of the git repository at `url` into `dest` (made if missing; it must
    be empty). Only https:// and file:// URLs (or an absolute path), and a commit in full.
    `run_as` (sandbox.prefix) runs git as the researcher's user in the run's container, so a
    file:// URL reaches only what that user may read there; `dest` must then be theirs
    already, inside the run's directory. The repository's history
    (.git) is not kept: what runs is the tree of that one commit. `max_bytes` bounds both
    what the fetch writes (watched while it runs) and the commit's files (summed before
    they are written)."""
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
        _fetch(git, git_url, scheme, sha, dest, timeout_s, run_as, max_bytes)
    except BaseException:
        for entry in dest.iterdir():  # a refused checkout leaves nothing behind
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        raise


def _fetch(git: str, git_url: str, scheme: str, sha: str, dest: Path, timeout_s: float,
           run_as: Sequence[str], max_bytes: int | None) -> None:
    safe = safe_url(git_url)
    too_big = (f"the repository {safe} at {sha} is larger than your limit of "
               f"{max_bytes} bytes for a workflow: keep data out of the repository (the "
               "workflow reads it from the DataLake)")

    def watch() -> str | None:
        return too_big if max_bytes is not None and disk_bytes(dest) > max_bytes else None

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
            try:
                code, out = (None, "") if left <= 0 else run_bounded(
                    [*run_as, git, *options, *args], cwd=dest, env=env, timeout_s=left,
                    watch=watch)
            except Stopped as exc:
                raise SubmissionError(str(exc)) from None
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
        if max_bytes is not None:
            code, said = run("ls-tree", "-r", "-l", "--full-tree", sha)
            if code != 0:
                raise SubmissionError(f"commit {sha} of {safe} could not be listed (git said: "
                                      f"{said})")
            if tree_bytes(said) > max_bytes:
                raise SubmissionError(too_big)
        code, said = run("checkout", "-q", "--detach", sha)
        if code != 0:
            raise SubmissionError(f"commit {sha} of {safe} could not be checked out (git said: "
                                  f"{said})")
    shutil.rmtree(dest / ".git")


def tree_bytes(listing: str) -> int:
    """The bytes of the files `git ls-tree -r -l` lists (`<mode> <type> <object> <size>\t<path>`;
    submodules, size "-", count nothing)."""
    total = 0
    for line in listing.splitlines():
        fields = line.split("\t", 1)[0].split()
        if len(fields) == 4 and fields[3].isdigit():
            total += int(fields[3])
    return total


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

"""A submission's checks with the real tools: git checks out a local repository at a commit
(and refuses what is not a commit, not a repository or not an accepted transport), and Snakemake
parses workflows as the researcher's system user (as root: `setpriv` to `ldl-testuser` and a
bwrap container, in a directory handed over to that user), stopped by the timeout when parsing
does not end."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lofar_datalake.service import sandbox
from lofar_datalake.service.bounded import Stopped, run_bounded
from lofar_datalake.service.git_checkout import checkout
from lofar_datalake.service.submission import SubmissionError, check_parses

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
GIT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


# --- git ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Repo:
    path: Path
    first: str
    second: str


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test",
                           "-c", "user.email=test@example.org", *args], env=GIT_ENV,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "Snakefile").write_text("rule all:\n    input: []\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    first = git(path, "rev-parse", "HEAD")
    (path / "Snakefile").write_text("rule all:\n    input: config['samples']\n")
    (path / "config.yaml").write_text("samples: []\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "second")
    return Repo(path, first, git(path, "rev-parse", "HEAD"))


def test_each_commit_of_a_local_repository_is_checked_out_by_its_hash(repo, tmp_path):
    checkout(str(repo.path), repo.first, tmp_path / "first")  # a path: taken as file://
    checkout(f"file://{repo.path}", repo.second.upper(), tmp_path / "second")
    assert sorted(os.listdir(tmp_path / "first")) == ["Snakefile"]  # no .git kept
    assert sorted(os.listdir(tmp_path / "second")) == ["Snakefile", "config.yaml"]
    assert "config['samples']" in (tmp_path / "second" / "Snakefile").read_text()


@pytest.mark.parametrize("commit", ["main", "HEAD", "first", "abc1234", "g" * 40, "0" * 39])
def test_anything_but_a_full_commit_hash_is_refused(repo, tmp_path, commit):
    with pytest.raises(SubmissionError, match="give the commit's full hash") as caught:
        checkout(str(repo.path), commit, tmp_path / "dest")
    assert repr(commit) in str(caught.value) and str(repo.path) in str(caught.value)


def test_an_unknown_commit_is_refused_naming_the_url_and_the_commit(repo, tmp_path):
    unknown = "1" * 40
    with pytest.raises(SubmissionError) as caught:
        checkout(str(repo.path), unknown, tmp_path / "dest")
    assert str(caught.value) == (f"commit {unknown} is not in the repository file://{repo.path}: "
                                 "give the full hash of a commit pushed to that repository")


def test_a_path_that_is_not_a_repository_is_refused(repo, tmp_path):
    (tmp_path / "plain").mkdir()
    for url in (str(tmp_path / "plain"), f"file://{tmp_path}/nonexistent"):
        with pytest.raises(SubmissionError, match="could not be read") as caught:
            checkout(url, repo.first, tmp_path / "dest")
        assert url.removeprefix("file://") in str(caught.value)
        assert "does not appear to be a git repository" in str(caught.value)


@pytest.mark.parametrize("url", [
    "ssh://git@example.org/lofar/flow.git", "git@example.org:lofar/flow.git",
    "git://example.org/lofar/flow.git", "http://example.org/lofar/flow.git",
    "ext::false", "ext::sh -c touch% /tmp/pwned", "-uhelp", "repo", "file://host/srv/repo",
    "https://example.org/flow.git?token=x",
])
def test_other_transports_and_malformed_urls_are_refused_before_git_runs(tmp_path, url):
    with pytest.raises(SubmissionError, match="repository URL"):
        checkout(url, "0" * 40, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()  # refused before anything was made


def test_credentials_in_an_unreachable_url_stay_out_of_the_message(tmp_path):
    url = "https://alice:s3cret-token@127.0.0.1:9/lofar/flow.git"  # nothing listens on 9
    with pytest.raises(SubmissionError, match="could not be read") as caught:
        checkout(url, "0" * 40, tmp_path / "dest", timeout_s=60)
    message = str(caught.value)
    assert "https://127.0.0.1:9/lofar/flow.git" in message
    assert "s3cret" not in message and "alice" not in message


def test_a_commit_larger_than_the_limit_is_refused_and_leaves_nothing(repo, tmp_path):
    (repo.path / "data.bin").write_bytes(os.urandom(3 * 1024**2))  # incompressible
    git(repo.path, "add", ".")
    git(repo.path, "commit", "-q", "-m", "data in the repository")
    big = git(repo.path, "rev-parse", "HEAD")
    with pytest.raises(SubmissionError, match="larger than your limit of 1048576 bytes"):
        checkout(str(repo.path), big, tmp_path / "big", max_bytes=1024**2)
    assert list((tmp_path / "big").iterdir()) == []
    checkout(str(repo.path), repo.second, tmp_path / "small", max_bytes=1024**2)  # history
    assert (tmp_path / "small" / "config.yaml").is_file()  # is not counted, only its tree


def test_a_child_whose_watch_finds_it_too_big_is_killed(tmp_path):
    grows = tmp_path / "grows"
    argv = ["sh", "-c", f"while :; do head -c 65536 /dev/zero >> {grows}; sleep 0.05; done"]

    def watch() -> str | None:
        return "over 1 MiB" if grows.exists() and grows.stat().st_size > 1024**2 else None

    with pytest.raises(Stopped, match="over 1 MiB"):
        run_bounded(argv, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, timeout_s=60,
                    watch=watch)
    size = grows.stat().st_size
    time.sleep(0.5)
    assert grows.stat().st_size == size  # nothing of it still writes


@pytest.mark.skipif(not sandbox.isolated(), reason="switching users needs root")
def test_git_run_as_the_researcher_cannot_read_the_services_repositories(repo):
    user = sandbox.user_for("testuser")
    run = Path(tempfile.mkdtemp(prefix="ldl-checkout-test-"))
    try:
        (run / "workflow").mkdir()
        sandbox.hand_over(run, user)
        with pytest.raises(SubmissionError, match="could not be read"):
            checkout(str(repo.path), repo.first, run / "workflow",
                     run_as=sandbox.prefix(user, run, sandbox.walls([])))
        assert list((run / "workflow").iterdir()) == []
    finally:
        shutil.rmtree(run)


# --- parsing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sandboxed:
    run: Path
    workflow: Path
    run_as: list[str]
    env: dict[str, str]
    uid: int


@pytest.fixture(scope="module")
def user() -> str:
    return sandbox.user_for("testuser")


@pytest.fixture()
def parse_in(user: str) -> Iterator:
    """A run directory as the service lays it out (workflow/, home/tmp), outside pytest's private
    base directory so that the researcher's user can reach it, handed over to that user."""
    made: list[Path] = []

    def make(files: dict[str, str]) -> Sandboxed:
        run = Path(tempfile.mkdtemp(prefix="ldl-parse-test-"))
        made.append(run)
        (run / "home" / "tmp").mkdir(parents=True)
        for name, text in files.items():
            (run / "workflow" / name).parent.mkdir(parents=True, exist_ok=True)
            (run / "workflow" / name).write_text(text)
        sandbox.hand_over(run, user)
        uid = pwd.getpwnam(user).pw_uid if sandbox.isolated() else os.getuid()
        return Sandboxed(run, run / "workflow", sandbox.prefix(user, run, sandbox.walls([])),
                         sandbox.environment(run / "home"), uid)

    yield make
    for run in made:
        shutil.rmtree(run)


def parse(box: Sandboxed, timeout_s: float = 120) -> None:
    check_parses(box.workflow, box.workflow / "Snakefile", box.workflow / "config.yaml",
                 box.run_as, box.env, timeout_s=timeout_s)


def test_the_researchers_user_can_run_the_services_snakemake(parse_in):
    box = parse_in({})
    done = subprocess.run(
        [*box.run_as, str(SNAKEMAKE.with_name("python")), "-c",
         "import os, sys, snakemake; print(os.getuid(), sys.version.split()[0])"],
        env=box.env, cwd=box.run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"the sandbox user cannot run {SNAKEMAKE}: the venv and the Python it was made from must "
        f"be readable (and their directories searchable) by others:\n{done.stderr}")
    uid, version = done.stdout.split()
    assert int(uid) == box.uid
    print(f"the sandbox's Python: {version}; the service's: {sys.version.split()[0]}")


def test_a_good_workflow_parses_as_the_researchers_user(parse_in):
    box = parse_in({
        "Snakefile": "import os\n"
                     "with open(os.path.join(workflow.basedir, 'parsed-by'), 'w') as f:\n"
                     "    f.write(str(os.getuid()))\n"
                     "rule all:\n    input: expand('{s}.txt', s=config['samples'])\n"
                     "rule one:\n    output: '{s}.txt'\n    shell: 'touch {output}'\n",
        "config.yaml": "samples: [a, b]\n"})
    parse(box)
    assert int((box.workflow / "parsed-by").read_text()) == box.uid


def test_a_syntax_error_is_refused_naming_the_file_and_line(parse_in):
    box = parse_in({"Snakefile": "rule all:\n    input: []\nif True print('no colon')\n",
                    "config.yaml": "{}\n"})
    with pytest.raises(SubmissionError) as caught:
        parse(box)
    message = str(caught.value)
    assert message.startswith("Snakemake cannot parse the workflow (Snakefile with config "
                              "config.yaml):\n"), message
    assert "SyntaxError" in message and "line 3" in message, message
    assert str(box.run) not in message  # the service's paths are not the researcher's business


def test_a_config_key_the_workflow_reads_but_lacks_is_refused_with_snakemakes_keyerror(
        parse_in):
    box = parse_in({"Snakefile": "rule all:\n    input: config['samples']\n",
                    "config.yaml": "other: 1\n"})
    with pytest.raises(SubmissionError) as caught:
        parse(box)
    message = str(caught.value)
    assert "KeyError" in message and "'samples'" in message and "line 2" in message, message
    assert str(box.run) not in message


def test_a_workflow_that_sleeps_at_parse_time_is_stopped_by_the_timeout(parse_in):
    box = parse_in({
        "Snakefile": "import subprocess, time\n"
                     "subprocess.Popen(['sh', '-c', 'while :; do echo >> beats; sleep 0.1; "
                     "done'], cwd=workflow.basedir)\n"
                     "time.sleep(3600)\n",
        "config.yaml": "{}\n"})
    started = time.monotonic()
    with pytest.raises(SubmissionError, match="took longer than 12 s to parse"):
        parse(box, timeout_s=12)
    assert time.monotonic() - started < 20
    beats = box.workflow / "beats"  # (its pid would be the container's, not ours)
    assert beats.stat().st_size > 0  # it got as far as the Snakefile
    size = beats.stat().st_size
    time.sleep(0.5)
    assert beats.stat().st_size == size  # what it started is stopped with it

"""The container a researcher's code runs in (service/sandbox.py), as a command: its namespaces,
what it mounts and in which order, and which of the service's directories it hides, taken
from the service's settings. tests/integration/test_service_container.py runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lofar_datalake.service import sandbox
from lofar_datalake.service.model import ProbeSettings, Researcher
from lofar_datalake.service.worker import Settings, SiteEntry

BWRAP = "/usr/bin/bwrap"


@pytest.fixture()
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "isolated", lambda: True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: BWRAP if name == "bwrap" else None)


def made(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True)


def options(command: list[str], flag: str) -> list[str]:
    """The paths `flag` is given, in order."""
    return [command[i + 1] for i, word in enumerate(command) if word == flag]


def test_a_run_gets_namespaces_of_its_own_but_the_network_as_its_own_user(as_root, tmp_path):
    command = sandbox.prefix("ldl-alice", tmp_path, sandbox.walls([]))
    assert command[:9] == ["setpriv", "--reuid", "ldl-alice", "--regid", "ldl-alice",
                           "--init-groups", "--no-new-privs", "--", BWRAP]
    for flag in ("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--die-with-parent", "--new-session"):
        assert flag in command
    assert not {"--unshare-net", "--unshare-all", "--uid", "--cap-add"} & set(command)
    assert command[-1] == "--"  # the command follows


def test_the_root_is_read_only_the_run_directory_writable_and_private_ones_empty(
        as_root, tmp_path):
    state, etc = tmp_path / "state", tmp_path / "etc"
    run = state / "runs" / "7"
    made(run, etc)
    command = sandbox.prefix("ldl-alice", run, sandbox.walls(
        [("the state directory", state), ("--researchers", etc)]))
    mounts = command[command.index(BWRAP) + 1 + len(sandbox.NAMESPACES):-1]
    assert mounts[:7] == ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    assert options(mounts, "--bind") == [str(run)]  # the one place it may write
    assert options(mounts, "--tmpfs") == [str(etc), str(state)]
    assert options(mounts, "--remount-ro") == [str(etc), str(state)]
    # The empty directories first, then the run's inside one of them; read-only at the end.
    assert mounts.index("--tmpfs") < mounts.index("--bind") < mounts.index("--remount-ro")


def test_what_runs_need_below_a_hidden_directory_is_mounted_back_read_only(as_root, tmp_path):
    project = tmp_path / "project"
    made(project / "config", tmp_path / "run")
    rules = project / "config" / "compare.yaml"
    rules.write_text("rules: []\n")
    walls = sandbox.walls([("--researchers", project / "config")], needed=[rules])
    assert walls.layers == (("hide", project / "config"), ("keep", rules))
    command = sandbox.prefix("ldl-alice", tmp_path / "run", walls)
    assert options(command, "--ro-bind") == ["/", str(rules)]
    assert command.index(str(project / "config")) < command.index(str(rules))


def test_a_hidden_directory_within_another_is_hidden_again_only_below_something_kept() -> None:
    a, kept, inner = Path("/a"), Path("/a/project"), Path("/a/project/.testbed/etc")
    assert sandbox._layered([("hide", inner), ("hide", a)]) == (("hide", a),)
    assert sandbox._layered([("hide", inner), ("keep", kept), ("hide", a)]) == (
        ("hide", a), ("keep", kept), ("hide", inner))
    assert sandbox._layered([("keep", kept)]) == ()  # nothing hides it


def test_a_directory_runs_need_cannot_be_hidden(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"--researchers is in .*the project's or its Python's"):
        sandbox.walls([("--researchers", sandbox.PROJECT)])
    with pytest.raises(ValueError, match=r"--tls-key is in /etc, the system's"):
        sandbox.walls([("--tls-key", Path("/etc"))])


def test_a_private_directory_that_does_not_exist_is_not_mounted_over(tmp_path) -> None:
    assert sandbox.walls([("--researchers", tmp_path / "gone")]).layers == ()


def test_the_services_settings_name_every_directory_a_run_must_not_see(as_root,
                                                                        tmp_path) -> None:
    state, rucio, creds, etc, pki, proxies = (tmp_path / n for n in (
        "state", "rucio", "creds", "etc", "pki", "proxies"))
    made(state, rucio, creds, etc, pki, proxies)
    alice = Researcher("alice", "$argon2id$x", "alice", ("user.alice",),
                       str(creds / "alice.secret"))
    settings = Settings(state, {"alice": alice},
                        {"SITE_A": SiteEntry("SITE_A", tmp_path / "profile", "SITE_A_DISK")},
                        rucio / "rucio.cfg", tmp_path / "ca.pem",
                        probes=ProbeSettings("alice", 600, 300, str(proxies / "proxy.pem")),
                        private={"--researchers": etc / "researchers.yaml",
                                 "--tls-key": pki / "key.pem"})
    assert set(settings.walls.hidden) == {state, rucio, creds, etc, pki, proxies}


def test_without_root_a_run_is_not_wrapped(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(sandbox, "isolated", lambda: False)
    assert sandbox.prefix("ldl-alice", tmp_path, sandbox.walls([])) == []
    sandbox.check("ldl-alice", sandbox.walls([]), tmp_path)  # nothing to check


def test_a_root_service_without_bwrap_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path) -> None:
    monkeypatch.setattr(sandbox, "isolated", lambda: True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install the Debian package bubblewrap"):
        sandbox.check("ldl-alice", sandbox.walls([]), tmp_path)
    with pytest.raises(RuntimeError, match="bubblewrap"):
        sandbox.prefix("ldl-alice", tmp_path, sandbox.walls([]))

import stat
from pathlib import Path

from lofar_datalake_testbed.layout import LISTEN_FLOOR, Layout, _ephemeral_start, free_port
from lofar_datalake_testbed.servers.dav_paths import local_path as _local_path


def test_ports_are_allocated_once_and_remembered(tmp_path):
    layout = Layout(tmp_path)
    layout.make_dirs()
    first = layout.ports()
    assert len(set(first.values())) == len(first)
    assert Layout(tmp_path).ports() == first
    # Below the ephemeral range, where no outgoing connection takes them before their server.
    assert all(LISTEN_FLOOR <= port < _ephemeral_start() for port in first.values())


def test_a_free_port_is_none_of_those_to_avoid():
    taken = set(range(LISTEN_FLOOR, _ephemeral_start())) - {LISTEN_FLOOR + 7}
    assert free_port(avoid=taken) in (LISTEN_FLOOR + 7, *range(_ephemeral_start(), 65536))


def test_webdav_paths_never_escape_the_root(tmp_path):
    root = tmp_path.resolve()
    assert _local_path(root, "/a/b.txt") == root / "a" / "b.txt"
    assert _local_path(root, "/../etc/passwd") is None
    assert _local_path(root, "/a/%2e%2e/%2e%2e/x") is None
    assert _local_path(root, "/") == Path(root)


def test_the_state_directory_stays_traversable_for_the_database_user_after_every_up(tmp_path):
    """The database server runs as a user of its own and opens files below the root by absolute
    path: a second `up` must not close the root to it (it killed the running database)."""
    layout = Layout(tmp_path / "tb")
    layout.make_dirs()
    layout.root.chmod(0o755)  # as embedded PostgreSQL leaves it when it starts
    layout.make_dirs()
    mode = stat.S_IMODE(layout.root.stat().st_mode)
    assert mode & 0o011 == 0o011, oct(mode)  # group and others may traverse
    assert mode & 0o044 == 0, oct(mode)  # but not list it
    assert stat.S_IMODE(layout.etc.stat().st_mode) == 0o700

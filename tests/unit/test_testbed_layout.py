from pathlib import Path

from lofar_datalake_testbed.layout import Layout
from lofar_datalake_testbed.servers.dav_paths import local_path as _local_path


def test_ports_are_allocated_once_and_remembered(tmp_path):
    layout = Layout(tmp_path)
    layout.make_dirs()
    first = layout.ports()
    assert len(set(first.values())) == len(first)
    assert Layout(tmp_path).ports() == first


def test_webdav_paths_never_escape_the_root(tmp_path):
    root = tmp_path.resolve()
    assert _local_path(root, "/a/b.txt") == root / "a" / "b.txt"
    assert _local_path(root, "/../etc/passwd") is None
    assert _local_path(root, "/a/%2e%2e/%2e%2e/x") is None
    assert _local_path(root, "/") == Path(root)

import zlib

import pytest

from datalake_core.checksums import adler32_of_file, normalise_adler32


def test_adler32_matches_zlib_and_is_zero_padded(tmp_path):
    path = tmp_path / "f"
    data = b"a" * 10
    path.write_bytes(data)
    expected = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert adler32_of_file(path) == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert adler32_of_file(empty) == "00000001"


def test_adler32_streams_large_files_in_chunks(tmp_path):
    data = bytes(range(256)) * 40000  # > one 4 MiB chunk
    path = tmp_path / "big"
    path.write_bytes(data)
    assert adler32_of_file(path) == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@pytest.mark.parametrize("value", ["ADLER32:1a2b", "adler32:00001a2b", "1A2B"])
def test_normalise_adler32(value):
    assert normalise_adler32(value) == "00001a2b"

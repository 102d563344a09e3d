"""The WebDAV storage's checksums on request (RFC 3230 Want-Digest), as gfal2 asks for them."""

from __future__ import annotations

import base64
import hashlib
import zlib

from lofar_datalake_testbed.servers.dav_digest import digest, report_digests, wanted


def test_wanted_keeps_known_algorithms_in_order_and_drops_refused_ones():
    assert wanted("ADLER32") == ["adler32"]
    assert wanted("md5;q=0.3, adler32") == ["md5", "adler32"]
    assert wanted("adler32;q=0, sha-256") == []


def test_digest_values_are_those_of_the_bytes_on_disk(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert digest(path, "adler32") == f"adler32={zlib.adler32(data):08x}"
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    assert digest(path, "md5") == f"md5={md5}"


def test_only_successful_reads_of_files_that_ask_get_a_digest(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"abc")
    seen = {}

    def storage(environ, start_response):
        start_response(environ["status"], [("Content-Length", "3")])
        return [b"abc"]

    def start_response(status, headers, *rest):
        seen["digest"] = dict(headers).get("Digest")

    app = report_digests(storage, tmp_path)
    cases = [
        ("HEAD", "/f.bin", "adler32", "200 OK", f"adler32={zlib.adler32(b'abc'):08x}"),
        ("GET", "/f.bin", "", "200 OK", None),
        ("PUT", "/f.bin", "adler32", "201 Created", None),
        ("HEAD", "/missing.bin", "adler32", "404 Not Found", None),
        ("HEAD", "/../etc/passwd", "adler32", "200 OK", None),
    ]
    for method, path, want, status, expected in cases:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "status": status}
        if want:
            environ["HTTP_WANT_DIGEST"] = want
        app(environ, start_response)
        assert seen.pop("digest", None) == expected, (method, path)

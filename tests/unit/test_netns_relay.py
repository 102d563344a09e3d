"""The relay's pure parts, and its byte copying between two loopback ports of this namespace
(the namespace switching itself is tested as root in tests/sites/test_relay_in_netns.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from lofar_datalake_testbed import netns_relay as relay
from lofar_datalake_testbed.layout import free_port


def test_parse_ports():
    assert relay.parse_ports("") == []
    assert relay.parse_ports(" 8080, 443 ,") == [8080, 443]
    for bad in ("80,80", "0", "65536", "http", "-1"):
        with pytest.raises(ValueError):
            relay.parse_ports(bad)


def test_routes_must_not_loop_and_must_exist():
    relay.check_routes([1, 2], [3])
    with pytest.raises(ValueError, match=r"\[2\]"):
        relay.check_routes([1, 2], [2])
    with pytest.raises(ValueError, match="nothing"):
        relay.check_routes([], [])


def test_ready_names_process_namespace_and_ports(tmp_path):
    netns = tmp_path / "ns"
    netns.write_text("")
    ready_file = tmp_path / "ready"
    record = relay.Ready(123, os.stat(netns).st_ino, (1, 2), (3,))
    assert relay.Ready.loads(record.dumps()) == record
    assert not relay.is_ready(ready_file, 123, netns, [1, 2], [3])  # not written yet
    ready_file.write_text(record.dumps())
    assert relay.is_ready(ready_file, 123, netns, [1, 2], [3])
    assert not relay.is_ready(ready_file, 124, netns, [1, 2], [3])  # another process
    assert not relay.is_ready(ready_file, 123, netns, [1], [3])  # other ports
    recreated = tmp_path / "ns2"  # the namespace re-created: another inode, stale sockets
    recreated.write_text("")
    assert not relay.is_ready(ready_file, 123, recreated, [1, 2], [3])
    ready_file.write_text("{not json")
    assert not relay.is_ready(ready_file, 123, netns, [1, 2], [3])


async def _upstream(reply_prefix: bytes) -> tuple[asyncio.Server, int]:
    """Reads until EOF, then answers prefix + everything read (checks half-close)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(reply_prefix + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, relay.LOOPBACK, 0)
    return server, server.sockets[0].getsockname()[1]


def _route(listen: int, target: int) -> relay.Route:
    here = contextlib.nullcontext
    return relay.Route(listen, target, here, here, "test")


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(relay.LOOPBACK, port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    return answer


def test_relay_copies_both_ways_with_half_close():
    async def scenario() -> None:
        upstream, target = await _upstream(b"echo:")
        server = await relay.serve(_route(free_port(), target))
        port = server.sockets[0].getsockname()[1]
        payload = os.urandom(3 * 1024 * 1024 + 17)  # many chunks: exercises back-pressure
        answers = await asyncio.gather(*(_exchange(port, payload) for _ in range(4)))
        assert all(a == b"echo:" + payload for a in answers)
        server.close()
        upstream.close()

    asyncio.run(scenario())


def test_relay_closes_client_when_target_is_down():
    async def scenario() -> None:
        server = await relay.serve(_route(free_port(), free_port()))  # nothing listens there
        port = server.sockets[0].getsockname()[1]
        assert await asyncio.wait_for(_exchange(port, b"hello"), 5) == b""
        server.close()

    asyncio.run(scenario())


def test_listen_error_names_the_route():
    async def scenario() -> None:
        busy = await asyncio.start_server(lambda r, w: None, relay.LOOPBACK, 0)
        port = busy.sockets[0].getsockname()[1]
        with pytest.raises(OSError, match="test: cannot listen"):
            await relay.serve(_route(port, port))
        busy.close()

    asyncio.run(scenario())

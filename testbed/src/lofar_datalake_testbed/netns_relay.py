"""A TCP relay between the host's loopback and a network namespace's loopback.

The testbed's Slurm cluster lives in its own network namespace (slurmctld and slurmd bind every
interface), so its jobs cannot reach the DataLake on the host's 127.0.0.1, and host clients
cannot reach slurmctld. This process bridges exactly the ports named:

- `--into P,...`: listens on 127.0.0.1:P inside the namespace, connects to 127.0.0.1:P on the
  host, so jobs use the DataLake at the same URLs as the host (configs stay valid);
- `--out C,...`: listens on 127.0.0.1:C on the host, connects to 127.0.0.1:C inside the
  namespace (slurmctld), so `sbatch` and `squeue` work on the host with the cluster's slurm.conf.

A socket belongs to the network namespace its creating thread was in, and setns(2) moves only
the calling thread; the relay's single asyncio thread enters the namespace just to create a
socket, then returns. Only the named ports listen; no address or route is added anywhere.

    python -m lofar_datalake_testbed.netns_relay --netns /run/netns/NAME --into 8080 --out 6817
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024  # read size; with drain() at most ~2 chunks are buffered per direction
CONNECT_TIMEOUT_S = 10.0

Switch = Callable[[], AbstractContextManager[None]]


def parse_ports(text: str) -> list[int]:
    """`"8080,8443"` -> [8080, 8443]; empty text -> []. Refuses junk, out-of-range and repeats."""
    ports: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ValueError(f"not a TCP port: {part!r}")
        if int(part) in ports:
            raise ValueError(f"port {part} given twice")
        ports.append(int(part))
    return ports


def check_routes(into: list[int], out: list[int]) -> None:
    """A port relayed both ways would listen where it should connect (a loop)."""
    both = sorted(set(into) & set(out))
    if both:
        raise ValueError(f"port(s) {both} given both --into and --out")
    if not into and not out:
        raise ValueError("nothing to relay: give --into and/or --out ports")


@dataclass(frozen=True)
class Ready:
    """What the relay writes once every listener is bound: the probe's evidence that this very
    process serves these ports into this namespace (a namespace re-created since then has
    another inode, and the relay's sockets would be in the old one)."""

    pid: int
    netns_inode: int
    into: tuple[int, ...]
    out: tuple[int, ...]

    def dumps(self) -> str:
        return json.dumps(
            {"pid": self.pid, "netns_inode": self.netns_inode, "into": self.into, "out": self.out}
        )

    @classmethod
    def loads(cls, text: str) -> Ready:
        data = json.loads(text)
        return cls(
            int(data["pid"]),
            int(data["netns_inode"]),
            tuple(int(p) for p in data["into"]),
            tuple(int(p) for p in data["out"]),
        )


def is_ready(ready_file: Path, pid: int, netns: Path, into: list[int], out: list[int]) -> bool:
    """True if the relay with `pid` announced exactly these routes into the current `netns`."""
    try:
        ready = Ready.loads(ready_file.read_text())
        inode = os.stat(netns).st_ino
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return ready == Ready(pid, inode, tuple(into), tuple(out))


class Namespaces:
    """Switches this thread between the host's network namespace and the target's."""

    def __init__(self, target: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.target_fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        self.target_inode = os.fstat(self.target_fd).st_ino

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        self._setns(self.target_fd)
        try:
            yield
        finally:
            self._setns(self.host_fd)


def stream_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def listener(port: int, where: Switch) -> socket.socket:
    with where():
        sock = stream_socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()  # back-pressure: stop reading while the other side is slow
    if writer.can_write_eof():
        writer.write_eof()  # half-close: the peer may still answer (HTTP/1.0, netcat)


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until both sides are done; a reset on either side closes both."""
    tasks = [asyncio.create_task(_pipe(a[0], b[1])), asyncio.create_task(_pipe(b[0], a[1]))]
    try:
        await asyncio.gather(*tasks)
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for writer in (a[1], b[1]):
            writer.close()
        for writer in (a[1], b[1]):
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def connect(port: int, where: Switch) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with where():
        sock = stream_socket()
    sock.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (LOOPBACK, port)), CONNECT_TIMEOUT_S)
        return await asyncio.open_connection(sock=sock, limit=CHUNK)
    except BaseException:
        sock.close()
        raise


@dataclass(frozen=True)
class Route:
    """Listen on `listen_port` (created in `listen_in`), forward to `target_port` (connecting
    from `connect_in`). The relay uses the same port on both sides."""

    listen_port: int
    target_port: int
    listen_in: Switch
    connect_in: Switch
    label: str


async def serve(route: Route) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await connect(route.target_port, route.connect_in)
        except OSError as err:  # TimeoutError included
            # The service behind may just be down (the relay outlives it); the client sees a
            # closed connection, as it would see a refused one.
            print(f"{route.label}: cannot connect: {err}", file=sys.stderr, flush=True)
            writer.close()
            return
        await splice((reader, writer), upstream)

    try:
        sock = listener(route.listen_port, route.listen_in)
    except OSError as err:
        raise OSError(err.errno, f"{route.label}: cannot listen: {err.strerror}") from err
    return await asyncio.start_server(handle, sock=sock, limit=CHUNK)


def routes(spaces: Namespaces | None, into: list[int], out: list[int]) -> list[Route]:
    host: Switch = contextlib.nullcontext
    ns: Switch = spaces.inside if spaces else contextlib.nullcontext
    return [
        *(Route(p, p, ns, host, f"netns:{p} -> host:{p}") for p in into),
        *(Route(p, p, host, ns, f"host:{p} -> netns:{p}") for p in out),
    ]


async def run(args: argparse.Namespace) -> None:
    into, out = parse_ports(args.into), parse_ports(args.out)
    check_routes(into, out)
    spaces = Namespaces(Path(args.netns))
    servers = [await serve(route) for route in routes(spaces, into, out)]
    ready_file = Path(args.ready_file) if args.ready_file else None
    if ready_file:
        record = Ready(os.getpid(), spaces.target_inode, tuple(into), tuple(out))
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(record.dumps())
        tmp.replace(ready_file)
    print(f"relaying into {args.netns}: {into} and out of it: {out}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    if ready_file:
        ready_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True, help="namespace file, e.g. /run/netns/NAME")
    parser.add_argument("--into", default="", help="host ports to offer inside the namespace")
    parser.add_argument("--out", default="", help="namespace ports to offer on the host")
    parser.add_argument("--ready-file", default=None, help="written once all ports listen")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args))
    except (OSError, ValueError) as err:
        print(f"netns relay: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

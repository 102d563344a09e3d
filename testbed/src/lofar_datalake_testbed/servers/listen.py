"""Run a server with its listening sockets made here, bound to 127.0.0.1, and handed over as
systemd's socket activation does (`LISTEN_FDS`, `LISTEN_PID`, descriptors from 3 on).

For servers that cannot be told which address to listen on: XRootD 5.5 binds every address of
a port it is told, unless it inherits a socket on that port (`sd_listen_fds`, XrdNet). The
command is exec'd, so the pid stays the one the testbed recorded and `LISTEN_PID` is right even
through an exec'ing wrapper such as `unshare`.

    python -m lofar_datalake_testbed.servers.listen --port 1094 --port 8443 -- xrootd -c CFG
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

LOOPBACK = "127.0.0.1"
FIRST_FD = 3  # SD_LISTEN_FDS_START


def listening(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(255)
    return sock


def hand_over(ports: list[int]) -> None:
    """Descriptors 3, 4, ... listening on the ports, in order, inherited by the next exec."""
    for offset, port in enumerate(ports):
        fd = FIRST_FD + offset
        made = listening(port).detach()  # the descriptor outlives the socket object
        if made != fd:
            os.dup2(made, fd)
            os.close(made)
        os.set_inheritable(fd, True)
    os.environ["LISTEN_FDS"] = str(len(ports))
    os.environ["LISTEN_PID"] = str(os.getpid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    hand_over(args.port)
    os.execvp(command[0], command)  # noqa: S606 (the server named by the testbed, no shell)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())

"""What a process tree holds, read from ``/proc`` (Linux): for tests that interrupt a run and
check that it left no process and no listening port behind.

A tree is marked by its working directory: a test starts its subprocess in a fresh directory,
every child inherits it, and ``redis-server`` moves into its ``--dir``, a temporary directory
under ``$TMPDIR``, which the test points into the same fresh directory. A process keeps its
mark when it is re-parented to init, which is what a leaked child looks like.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

__all__ = ["listening_ports", "marked_processes", "port_is_free"]

_PROC = Path("/proc")
_LISTEN = "0A"


def marked_processes(mark: Path) -> dict[int, str]:
    """Live processes (pid: command line) whose working directory is ``mark`` or under it."""
    prefix = str(mark)
    found = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            if cwd == prefix or cwd.startswith(prefix + os.sep):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie holds nothing; its parent reaps it
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(entry.name)] = command.decode(errors="replace").strip()
    return found


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports (IPv4 and IPv6) on which one of ``pids`` holds a listening socket."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (_PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (_PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == _LISTEN and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def port_is_free(port: int) -> bool:
    """Whether a listening socket can be bound to ``port`` on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

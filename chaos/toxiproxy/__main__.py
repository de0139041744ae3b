"""``python -m chaos.toxiproxy``: the embedded server as a ``toxiproxy-server`` command.

Flags follow toxiproxy-server (Go style, ``-flag value`` or ``--flag=value``): ``-host`` (default
127.0.0.1, loopback, where toxiproxy-server uses localhost), ``-port`` (default 8474; 0 picks a
free port), ``-config`` (a JSON file in the ``/populate`` format), ``-seed`` (makes toxics'
randomness reproducible) and ``-version``. Once listening it prints one line,
``toxiproxy: listening on http://HOST:PORT``, so a parent process can read the port. SIGINT or
SIGTERM stops it cleanly with exit status 0. A bad flag (a port outside 0-65535) is one line on
stderr with exit status 2; an address it cannot listen on (a port in use, a host that does not
resolve) one line with exit status 1, as toxiproxy-server exits; never a traceback.
``LOG_LEVEL`` (``error``, ``warn``, ``info``, ``debug``, ...) sets the log level on stderr; the
default is ``warn``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Final, NoReturn

from chaos.toxiproxy.server import DEFAULT_HOST, TOXIPROXY_VERSION, ToxiproxyServer

_LOG_LEVELS: Final = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


def main(argv: list[str] | None = None, *, prog: str = "python -m chaos.toxiproxy") -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status."""
    parser = _Parser(prog=prog, description="Toxiproxy-compatible server")
    parser.add_argument("-host", "--host", default=DEFAULT_HOST, help="API interface")
    parser.add_argument("-port", "--port", type=_port, default=8474, help="API port (0: free port)")
    parser.add_argument("-config", "--config", default=None, help="JSON file of proxies")
    parser.add_argument("-seed", "--seed", type=int, default=None, help="seed for toxics")
    parser.add_argument("-version", "--version", action="store_true", help="print the version")
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if args.version:
        print(f"toxiproxy-server version {TOXIPROXY_VERSION}")
        return 0
    level_name = os.environ.get("LOG_LEVEL", "warn").strip().lower()
    logging.basicConfig(
        level=_LOG_LEVELS.get(level_name, logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = ToxiproxyServer(args.host, args.port, seed=args.seed, config=args.config)
    try:
        asyncio.run(_serve(server))
    except _CannotListen as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


class _UsageError(Exception):
    """A bad flag: one line, exit status 2."""


class _CannotListen(Exception):
    """The API address cannot be listened on: one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0: a free port), got {port}")
    return port


async def _serve(server: ToxiproxyServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except OSError as error:  # in use, not local, no such host (socket.gaierror)
        code = None if isinstance(error, socket.gaierror) else error.errno
        reason = os.strerror(code) if code else error.strerror or str(error)
        raise _CannotListen(f"cannot listen on {server.host}:{server.port}: {reason}") from None
    print(f"toxiproxy: listening on {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    sys.exit(main())

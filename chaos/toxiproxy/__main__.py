"""``python -m chaos.toxiproxy``: the embedded server as a ``toxiproxy-server`` command.

Flags follow toxiproxy-server (Go style, ``-flag value`` or ``--flag=value``): ``-host`` (default
127.0.0.1, loopback, where toxiproxy-server uses localhost), ``-port`` (default 8474; 0 picks a
free port), ``-config`` (a JSON file in the ``/populate`` format), ``-seed`` (makes toxics'
randomness reproducible) and ``-version``. Once listening it prints one line,
``toxiproxy: listening on http://HOST:PORT``, so a parent process can read the port. SIGINT or
SIGTERM stops it cleanly with exit status 0. ``LOG_LEVEL`` (``error``, ``warn``, ``info``,
``debug``, ...) sets the log level on stderr; the default is ``warn``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Final

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


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m chaos.toxiproxy", description="Toxiproxy-compatible server"
    )
    parser.add_argument("-host", "--host", default=DEFAULT_HOST, help="API interface")
    parser.add_argument("-port", "--port", type=int, default=8474, help="API port (0: free port)")
    parser.add_argument("-config", "--config", default=None, help="JSON file of proxies")
    parser.add_argument("-seed", "--seed", type=int, default=None, help="seed for toxics")
    parser.add_argument("-version", "--version", action="store_true", help="print the version")
    args = parser.parse_args(argv)
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
    asyncio.run(_serve(server))
    return 0


async def _serve(server: ToxiproxyServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    print(f"toxiproxy: listening on {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    sys.exit(main())

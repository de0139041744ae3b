"""The load process: ``python -m chaos.load._child``, driven by :class:`chaos.load.LoadProcess`.

It reads a plan, builds it, says it is ready, waits for the start time, runs the plan on its own
event loop (uvloop when installed) and sends back progress and the result; the messages are
those of :mod:`chaos.load._framing`. The child's own file descriptor 1 is pointed at stderr,
so a stray print cannot corrupt the message stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from collections.abc import Awaitable
from typing import TypeVar

from chaos.load._framing import frame, read_blocking
from chaos.load._load import Load
from chaos.load._recorder import Plan
from chaos.load._result import LoadProgress

_T = TypeVar("_T")


def main() -> None:
    """Run one load for the parent on stdin/stdout (see the module docstring)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer

    def send(message: object) -> None:
        out.write(frame(message))
        out.flush()

    try:
        message = read_blocking(stdin)
        if not (isinstance(message, tuple) and message[0] == "plan"):
            raise ValueError(f"expected a plan, got {message!r}")
        load: Load = message[1]
        base_url: str | tuple[str, ...] = message[2]
        seed: int = message[3]
        targets: dict[str, str] = message[4]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard, max(soft, load.max_in_flight + 256))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        plan = Plan.build(load, seed)
        send(("ready",))
        message = read_blocking(stdin)
        if not (isinstance(message, tuple) and message[0] == "begin"):
            return
        t0: float = message[1]

        def send_progress(progress: LoadProgress) -> None:
            send(("progress", progress))

        result = _run(plan.run(base_url, start_at=t0, on_progress=send_progress, targets=targets))
        send(("result", result))
    except (EOFError, BrokenPipeError):
        print("chaos load process: the parent closed the pipe", file=sys.stderr)
    except KeyboardInterrupt:
        return
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send(("error", f"{type(exc).__name__}: {exc}"))


def _run(coro: Awaitable[_T]) -> _T:
    """Run ``coro`` on uvloop when it is installed (cheaper per request), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

"""The load process: ``python -m chaos._load_child``, driven by :class:`chaos.load.LoadProcess`.

Messages both ways are pickles framed by an 8-byte big-endian length. The parent sends
``("plan", load, base_url, seed)`` then ``("begin", t0)``; the child answers ``("ready",)``,
then ``("progress", LoadProgress)`` a few times a second, and ``("result", LoadResult)`` or
``("error", text)``. The child's own file descriptor 1 is pointed at stderr, so a stray print
cannot corrupt the message stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import resource
import struct
import sys
from collections.abc import Awaitable
from typing import BinaryIO, TypeVar

_HEADER = struct.Struct(">Q")
_T = TypeVar("_T")


def frame(message: object) -> bytes:
    """``message`` pickled and prefixed with its length."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> object:
    """The next message from ``reader`` (raises ``IncompleteReadError`` at end of stream)."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def _read_blocking(stream: BinaryIO) -> object:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def _run(coro: Awaitable[_T]) -> _T:
    """Run ``coro`` on uvloop when it is installed (cheaper per request), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def main() -> None:
    from chaos.load import Load, LoadProgress, _Plan

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer

    def send(message: object) -> None:
        out.write(frame(message))
        out.flush()

    try:
        message = _read_blocking(stdin)
        if not (isinstance(message, tuple) and message[0] == "plan"):
            raise ValueError(f"expected a plan, got {message!r}")
        load: Load = message[1]
        base_url: str = message[2]
        seed: int = message[3]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard, max(soft, load.max_in_flight + 256))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        plan = _Plan.build(load, seed)
        send(("ready",))
        message = _read_blocking(stdin)
        if not (isinstance(message, tuple) and message[0] == "begin"):
            return
        t0: float = message[1]

        def send_progress(progress: LoadProgress) -> None:
            send(("progress", progress))

        result = _run(plan.run(base_url, start_at=t0, on_progress=send_progress))
        send(("result", result))
    except (EOFError, BrokenPipeError):
        print("chaos load process: the parent closed the pipe", file=sys.stderr)
    except KeyboardInterrupt:
        return
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    main()

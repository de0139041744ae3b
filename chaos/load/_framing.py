"""The messages between :class:`~chaos.load.LoadProcess` and its child: pickles framed by an
8-byte big-endian length.

The parent sends ``("plan", load, base_url, seed, targets)`` then ``("begin", t0)``; the child
answers ``("ready",)``, then ``("progress", LoadProgress)`` a few times a second, and
``("result", LoadResult)`` or ``("error", text)``. Both sides import this module and nothing of
each other."""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import BinaryIO

__all__ = ["frame", "read_blocking", "read_frame"]

_HEADER = struct.Struct(">Q")


def frame(message: object) -> bytes:
    """``message`` pickled and prefixed with its length."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> object:
    """The next message from ``reader`` (raises ``IncompleteReadError`` at end of stream)."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def read_blocking(stream: BinaryIO) -> object:
    """The next message from a blocking ``stream`` (:class:`EOFError` at end of stream)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))

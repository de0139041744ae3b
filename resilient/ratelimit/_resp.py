"""The wire side of :class:`~resilient.ratelimit.RedisLimiter`: its commands and replies in RESP.

Why by hand: every decision is one ``EVALSHA`` of one script whose reply has one fixed shape
(four non-negative integers), so packing the command and matching the reply with a regular
expression costs a fraction of redis-py's generic machinery. Measured in one run
(``bench/bench_redis_paths.py``, redis-py 8.1, 31 interleaved rounds, medians), against a raw
``client.evalsha`` of ``return 1`` (target: at most 1.15x) and the best ``limits.aio`` strategy
at 64 tasks (target: at least 2x):

===========================================  ==================  ==================
path                                         sequential          64 tasks
===========================================  ==================  ==================
this codec on redis-py's streams             1.06-1.15x          3.5-3.9x
redis-py pipeline (hiredis / pure Python)    1.63-1.70x / 1.72x  2.3-2.4x / 1.8x
redis-py connection methods (hiredis)        1.19-1.30x          2.5-2.7x
``client.evalsha`` per decision (hiredis)    1.26-1.37x          0.8-0.9x
===========================================  ==================  ==================

No public path met the sequential target with either parser, so the limiter keeps this one.
The price is two private attributes of redis-py's asyncio connection, ``_reader`` and
``_writer`` (redis-py does the handshake: TLS, AUTH, SELECT, HELLO; the decisions then go over
its streams). :func:`open_streams` checks them each time it hands them out and raises
:class:`~resilient.errors.ConfigurationError` when they are not what this module expects: a
redis-py that changed them is a deployment fault to fix, never a Redis outage for a guard to
absorb. redis-py is pinned below its next major version, and CI runs the limiter's tests on
the oldest and the newest supported redis-py. Redis Cluster (whose client has no single
connection to borrow) would go through the public pipeline path, with the figures above.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import redis
from redis.exceptions import ResponseError

from resilient.errors import ConfigurationError

__all__ = [
    "COST_ARGS",
    "ProtocolError",
    "Reply",
    "array_head",
    "bulk",
    "is_noscript",
    "open_streams",
    "read_replies",
    "script_sha",
]

Reply = tuple[int, int, int, int]
"""(allowed 1/0, remaining, retry_after_us (-1: never), reset_after_us) as the script
returns them."""

_GCRA_REPLY = re.compile(rb"\*4\r\n:(\d{1,16})\r\n:(\d{1,16})\r\n:(-1|\d{1,16})\r\n:(\d{1,16})\r\n")
"""The script's reply in RESP2 and RESP3 alike: an array of four integers, non-negative but
the third (``retry_after_us``), which is -1 for a request no wait can make allowed."""

_ERROR_REPLY = re.compile(rb"-([^\r\n]{0,4096})\r\n")
"""An error reply (e.g. ``-NOSCRIPT ...``, ``-ERR ...``), returned to its caller as a fault."""

_READ_SIZE = 65536


class ProtocolError(ValueError):
    """Bytes from the server that are not a reply the script can have produced."""


def open_streams(connection: object) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The streams of a connected redis-py asyncio connection (private ``_reader``/``_writer``).

    Raises :class:`~resilient.errors.ConfigurationError` when the connection has no such
    attributes or they hold something else than asyncio streams: this redis-py is not one the
    limiter supports. Raises :class:`ConnectionError` when they are empty (not connected).
    """
    missing = [name for name in ("_reader", "_writer") if not hasattr(connection, name)]
    if missing:
        raise ConfigurationError(
            f"redis-py {redis.__version__}: {type(connection).__name__} has no "
            f"{' or '.join(missing)}, which RedisLimiter reads; use a redis-py this version of "
            "resilient supports (see its redis requirement)"
        )
    reader, writer = getattr(connection, "_reader"), getattr(connection, "_writer")  # noqa: B009
    if reader is None or writer is None:
        raise ConnectionError(f"{type(connection).__name__} is not connected")
    if not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
        raise ConfigurationError(
            f"redis-py {redis.__version__}: {type(connection).__name__}._reader/_writer are "
            f"{type(reader).__name__}/{type(writer).__name__}, not asyncio streams"
        )
    return reader, writer


async def read_replies(reader: asyncio.StreamReader, count: int) -> list[Reply | Exception]:
    """Read exactly ``count`` replies to the script; raise on garbage or a closed stream.

    A reply may arrive in any number of pieces (a slow or sliced network); bytes that can no
    longer become a valid reply, or bytes beyond the last expected reply, are garbage
    (:class:`ProtocolError`). An error reply is returned in its place as a ``ResponseError``.
    """
    replies: list[Reply | Exception] = []
    data = b""
    pos = 0
    while True:
        while len(replies) < count:
            match = _GCRA_REPLY.match(data, pos)
            if match is not None:
                allowed, remaining, retry_after_us, reset_after_us = map(int, match.groups())
                if allowed > 1:
                    raise ProtocolError(f"allowed flag {allowed} in a GCRA reply")
                replies.append((allowed, remaining, retry_after_us, reset_after_us))
                pos = match.end()
                continue
            match = _ERROR_REPLY.match(data, pos)
            if match is None:
                break
            replies.append(ResponseError(match.group(1).decode(errors="replace")))
            pos = match.end()
        if len(replies) == count:
            if pos != len(data):
                raise ProtocolError(f"unexpected bytes after the last reply: {data[pos:]!r:.80}")
            return replies
        _check_partial_reply(data[pos:])
        chunk = await reader.read(_READ_SIZE)
        if not chunk:
            raise ConnectionResetError("Redis closed the connection")
        data = data[pos:] + chunk
        pos = 0


def _check_partial_reply(rest: bytes) -> None:
    """Raise :class:`ProtocolError` unless ``rest`` can still grow into a valid reply."""
    if not rest:
        return
    if rest[:1] == b"-":
        if len(rest) > 4100 or b"\n" in rest:
            raise ProtocolError(f"malformed error reply: {rest!r:.80}")
        return
    lines = rest.split(b"\r\n")
    # At most four complete lines: five valid ones would have matched as a reply already.
    complete, tail = lines[:-1], lines[-1].removesuffix(b"\r")
    expected = [b"*4", b":", b":", b":", b":"]
    for index, line in enumerate(complete):
        if index == 0 and line != b"*4":
            raise ProtocolError(f"not a GCRA reply: {rest!r:.80}")
        never = index == 3 and line == b":-1"  # retry_after_us of a request never allowed
        if index > 0 and not never and not _is_integer_line(line):
            raise ProtocolError(f"malformed GCRA reply: {rest!r:.80}")
    index = len(complete)
    head = expected[index]
    growing = head.startswith(tail) or (head == b":" and _is_integer_line(tail))
    if not growing and not (index == 3 and b":-1".startswith(tail)):
        raise ProtocolError(f"malformed GCRA reply: {rest!r:.80}")


def _is_integer_line(line: bytes) -> bool:
    """``:`` and 1 to 16 digits: an integer the script can return."""
    return line[:1] == b":" and line[1:].isdigit() and len(line) <= 17


def is_noscript(reply: Reply | Exception) -> bool:
    """Whether Redis answered that it does not have the script (restarted, flushed)."""
    return isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")


def script_sha(script: str) -> bytes:
    """The SHA1 Redis names ``script`` by, as ASCII hex bytes."""
    return hashlib.sha1(script.encode()).hexdigest().encode()


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


COST_ARGS = tuple(bulk(b"%d" % cost) for cost in range(64))
"""The packed ``cost`` argument of the common small costs."""


def array_head(length: int, sha: bytes) -> bytes:
    """The start of an ``EVALSHA sha 1 ...`` command of ``length`` elements in all."""
    return b"*%d\r\n" % length + bulk(b"EVALSHA") + bulk(sha) + bulk(b"1")

"""The Redis limiter's wire codec on its own: every reply in any pieces, every kind of garbage."""

from __future__ import annotations

import asyncio
import hashlib
from types import SimpleNamespace

import pytest
import redis
from redis.exceptions import ResponseError

from resilient.errors import ConfigurationError
from resilient.ratelimit._resp import (
    COST_ARGS,
    ProtocolError,
    array_head,
    bulk,
    is_noscript,
    open_streams,
    read_replies,
    script_sha,
)

ALLOWED = b"*4\r\n:1\r\n:9\r\n:0\r\n:100000\r\n"
DENIED = b"*4\r\n:0\r\n:0\r\n:250000\r\n:900000\r\n"
NEVER = b"*4\r\n:0\r\n:3\r\n:-1\r\n:400000\r\n"
ERROR = b"-NOSCRIPT No matching script. \xff\r\n"

BATCH = ALLOWED + ERROR + NEVER + DENIED


class Pieces:
    """A stream that hands out ``data`` in pieces of ``size`` bytes, then end of file."""

    def __init__(self, data: bytes, size: int) -> None:
        self.pieces = [data[i : i + size] for i in range(0, len(data), size)]

    async def read(self, limit: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


async def replies(data: bytes, count: int, size: int = 1 << 20) -> list[object]:
    return await read_replies(Pieces(data, size), count)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 64, len(BATCH)])
async def test_a_batch_reads_the_same_in_pieces_of_any_size(size: int) -> None:
    got = await replies(BATCH, 4, size)
    assert got[0] == (1, 9, 0, 100000)
    assert isinstance(got[1], ResponseError)
    assert str(got[1]) == "NOSCRIPT No matching script. \ufffd"  # bytes that are not UTF-8
    assert is_noscript(got[1])  # type: ignore[arg-type]
    assert got[2] == (0, 3, -1, 400000)
    assert got[3] == (0, 0, 250000, 900000)


@pytest.mark.parametrize(
    ("data", "count", "message"),
    [
        (b"*4\r\n:2\r\n:0\r\n:0\r\n:0\r\n", 1, "allowed flag 2 in a GCRA reply"),
        (ALLOWED + ALLOWED, 1, "unexpected bytes after the last reply: "),
        (ALLOWED + b"+OK\r\n", 1, "unexpected bytes after the last reply: b'+OK\\r\\n'"),
        (b"-" + b"E" * 4200, 1, "malformed error reply: "),
        (b"-ERR one\nline\r\n", 1, "malformed error reply: "),
        (b"*3\r\n:1\r\n:1\r\n:1\r\n", 1, "not a GCRA reply: "),
        (b"+OK\r\n", 1, "malformed GCRA reply: "),
        (b"$5\r\nhello\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:1\r\n:-1\r\n:0\r\n:0\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:0\r\n:0\r\n:-5\r\n:0\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:0\r\n:0\r\n:-1\r\n:-1\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:1\r\n:12345678901234567\r\n:0\r\n:0\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n", 2, "malformed GCRA reply: "),
        (b"*4\r\n:1\r\n:x", 1, "malformed GCRA reply: "),
        (b"*4\r\n:x\r\n:0\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:0\r\n:0\r\n:x\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:0\r\n:-1\r\n", 1, "malformed GCRA reply: "),
        (b"*4\r\n:1\r\n:1\r\n:-2", 1, "malformed GCRA reply: "),
    ],
    ids=[
        "allowed-flag-2",
        "a-reply-too-many",
        "bytes-after-the-last",
        "error-without-end",
        "error-with-a-bare-newline",
        "array-of-three",
        "status-reply",
        "bulk-reply",
        "negative-remaining",
        "negative-retry-other-than-never",
        "negative-reset",
        "seventeen-digits",
        "a-fifth-integer",
        "letters",
        "letters-second",
        "letters-fourth",
        "never-in-the-wrong-place",
        "minus-two-arriving",
    ],
)
@pytest.mark.parametrize("size", [1, 1 << 20])
async def test_garbage_is_a_protocol_error_naming_what_is_wrong(
    data: bytes, count: int, message: str, size: int
) -> None:
    if size == 1 and message.startswith("unexpected bytes"):
        return  # in pieces, the reader stops at the last reply it expects: nothing more is read
    # A reply of the wrong shape is told as soon as its bytes show it: whole, by its first
    # line ("not a GCRA reply"); in pieces, often before that line is complete ("malformed").
    shape = ("not a GCRA reply: ", "malformed GCRA reply: ")
    expected = shape if message in shape else (message,)
    with pytest.raises(ProtocolError) as raised:
        await replies(data, count, size)
    assert str(raised.value).startswith(expected)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("cut", [0, 1, 5, len(ALLOWED) - 1])
async def test_a_reply_cut_short_is_a_closed_connection(cut: int) -> None:
    with pytest.raises(ConnectionResetError, match=r"^Redis closed the connection$"):
        await replies(ALLOWED[:cut], 1, 3)


async def test_an_error_reply_of_4096_bytes_is_still_an_error_reply() -> None:
    text = b"E" * 4096
    (got,) = await replies(b"-" + text + b"\r\n", 1, 1000)
    assert str(got) == text.decode()


def test_the_command_bytes() -> None:
    assert bulk(b"EVALSHA") == b"$7\r\nEVALSHA\r\n"
    assert bulk(b"") == b"$0\r\n\r\n"
    sha = script_sha("return 1")
    assert sha == hashlib.sha1(b"return 1").hexdigest().encode()
    assert array_head(8, sha) == b"*8\r\n$7\r\nEVALSHA\r\n$40\r\n" + sha + b"\r\n$1\r\n1\r\n"
    assert COST_ARGS[0] == b"$1\r\n0\r\n"
    assert COST_ARGS[63] == b"$2\r\n63\r\n"
    assert len(COST_ARGS) == 64


def test_noscript_is_told_from_other_errors() -> None:
    assert is_noscript(ResponseError("NOSCRIPT No matching script."))
    assert not is_noscript(ResponseError("ERR NOSCRIPT"))
    assert not is_noscript((1, 0, 0, 0))


async def test_open_streams_says_exactly_what_is_wrong() -> None:
    version = redis.__version__
    with pytest.raises(ConfigurationError) as raised:
        open_streams(SimpleNamespace(_writer=None))
    assert str(raised.value) == (
        f"redis-py {version}: SimpleNamespace has no _reader, which RedisLimiter reads; use a "
        "redis-py this version of resilient supports (see its redis requirement)"
    )
    with pytest.raises(ConfigurationError) as raised:
        open_streams(SimpleNamespace())
    assert "has no _reader or _writer, which" in str(raised.value)
    with pytest.raises(ConfigurationError) as raised:
        open_streams(SimpleNamespace(_reader=asyncio.StreamReader(), _writer=b"w"))
    assert str(raised.value) == (
        f"redis-py {version}: SimpleNamespace._reader/_writer are StreamReader/bytes, not "
        "asyncio streams"
    )
    for reader, writer in [(None, b"w"), (b"r", None), (None, None)]:
        with pytest.raises(ConnectionError, match=r"^SimpleNamespace is not connected$"):
            open_streams(SimpleNamespace(_reader=reader, _writer=writer))


@pytest.mark.parametrize("size", [1, 5, 1 << 20])
async def test_integers_of_sixteen_digits_are_read_in_pieces(size: int) -> None:
    data = b"*4\r\n:0\r\n:9999999999999999\r\n:1\r\n:4503599627370495\r\n"
    assert await replies(data, 1, size) == [(0, 9999999999999999, 1, 4503599627370495)]

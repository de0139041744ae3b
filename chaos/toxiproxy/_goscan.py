"""Go's ``encoding/json`` decoder without recursion: its exact syntax errors and depth limit.

:func:`chaos.toxiproxy._gojson.decode` reads a body with Python's ``json`` first (in C, fast).
When that fails, or the body nests deeper than Python's recursion allows, :func:`decode` reads
it again the way Go's ``json.Decoder`` does: through the states of Go's scanner, with an explicit
stack, so any nesting up to Go's 10,000 levels decodes, and every error is the text Go gives
(``invalid character 'x' after array element``, ``invalid character '[' exceeded max depth``,
``unexpected EOF``). Only the first value is read; what follows it is ignored, as in Go.

Runs of string bytes, digits and whitespace are matched by regular expressions, and so are runs
of simple elements (``1, "a", true,`` in an array, ``"k": 1,`` in an object), which Python's
``json`` then decodes in C: a megabyte of elements costs milliseconds, not a second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_DEPTH", "GoSyntaxError", "decode"]

MAX_DEPTH: Final = 10_000
"""Go's ``maxNestingDepth``: one more level is ``exceeded max depth``."""

_WHITESPACE: Final = re.compile(rb"[ \t\r\n]*")
_STRING_RUN: Final = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGITS: Final = re.compile(rb"[0-9]*")
# Atomic groups and possessive quantifiers (Python 3.11+): no backtracking, 6x faster here.
_STRING_TOKEN: Final = rb'"(?>[^"\\\x00-\x1f]++|\\(?>["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"'
_SIMPLE: Final = (
    rb"(?>-?+(?>0|[1-9][0-9]*+)(?>\.[0-9]++)?+(?>[eE][-+]?+[0-9]++)?+|"
    + _STRING_TOKEN
    + rb"|true|false|null)"
)
_WS: Final = rb"[ \t\r\n]*+"
_ARRAY_RUN: Final = re.compile(rb"(?>" + _WS + _SIMPLE + _WS + rb",)++")
_OBJECT_RUN: Final = re.compile(
    rb"(?>" + _WS + _STRING_TOKEN + _WS + rb":" + _WS + _SIMPLE + _WS + rb",)++"
)
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_SIMPLE_ESCAPES: Final = frozenset(b'"\\/bfnrt')
_LITERALS: Final = {
    ord("t"): (b"true", True),
    ord("f"): (b"false", False),
    ord("n"): (b"null", None),
}
# strconv.Quote's escapes for the bytes Go's quoteChar names with a backslash.
_GO_ESCAPES: Final = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


class GoSyntaxError(Exception):
    """The body is not JSON; ``str()`` is Go's message (``unexpected EOF``, ``invalid ...``)."""


def quote_byte(byte: int) -> str:
    """Go's ``quoteChar``: how its scanner names an unexpected byte, e.g. ``'x'``, ``'\\t'``."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x5C:
        return "'\\\\'"
    char = chr(byte)  # Go quotes string(rune(byte)): 0xe9 is 'é', whatever the encoding; '"' too
    if byte in _GO_ESCAPES:
        shown = _GO_ESCAPES[byte]
    elif char.isprintable():
        shown = char
    elif byte < 0x80:
        shown = f"\\x{byte:02x}"
    else:
        shown = f"\\u{byte:04x}"
    return f"'{shown}'"


def _error(byte: int, context: str) -> GoSyntaxError:
    return GoSyntaxError(f"invalid character {quote_byte(byte)} {context}")


def _eof() -> GoSyntaxError:
    return GoSyntaxError("unexpected EOF")


def decode(
    data: bytes, *, parse_int: Callable[[str], object], parse_float: Callable[[str], object]
) -> object:
    """The first JSON value of ``data`` (after whitespace); :class:`GoSyntaxError` otherwise."""
    reader = _Reader(data, parse_int, parse_float)
    return reader.read()


class _Reader:
    def __init__(
        self,
        data: bytes,
        parse_int: Callable[[str], object],
        parse_float: Callable[[str], object],
    ) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0
        self.parse_int = parse_int
        self.parse_float = parse_float
        self.runs = json.JSONDecoder(parse_int=parse_int, parse_float=parse_float)

    def read(self) -> object:
        stack: list[list[object] | dict[str, object]] = []
        keys: list[str] = []
        self._skip_whitespace()
        if self.pos >= self.size:
            raise GoSyntaxError("EOF")
        while True:
            value, opened = self._begin_value(stack, keys)
            if opened:
                continue
            while True:  # a value ended: attach it, then a ',' or the container's end
                if not stack:
                    return value
                top = stack[-1]
                if isinstance(top, dict):
                    top[keys[-1]] = value
                else:
                    top.append(value)
                byte = self._next_significant()
                if isinstance(top, dict):
                    if byte == 0x2C:  # ,
                        self.pos += 1
                        self._run(top)
                        keys[-1] = self._object_key("looking for beginning of object key string")
                        break
                    if byte != 0x7D:  # }
                        raise _error(byte, "after object key:value pair")
                    keys.pop()
                elif byte == 0x2C:
                    self.pos += 1
                    self._run(top)
                    break
                elif byte != 0x5D:  # ]
                    raise _error(byte, "after array element")
                self.pos += 1
                value = stack.pop()

    def _begin_value(
        self, stack: list[list[object] | dict[str, object]], keys: list[str]
    ) -> tuple[object, bool]:
        """Read a scalar (``(value, False)``) or open a container (``(None, True)``)."""
        byte = self._next_significant()
        if byte == 0x7B or byte == 0x5B:  # { or [
            if len(stack) >= MAX_DEPTH:
                raise _error(byte, "exceeded max depth")
            self.pos += 1
            closing = 0x7D if byte == 0x7B else 0x5D
            container: list[object] | dict[str, object] = {} if byte == 0x7B else []
            if self._next_significant() == closing:
                self.pos += 1
                return container, False
            stack.append(container)
            self._run(container)
            if isinstance(container, dict):
                keys.append(self._object_key("looking for beginning of object key string"))
            return None, True
        if byte == 0x22:
            return self._string(), False
        if byte == 0x2D or 0x30 <= byte <= 0x39:
            return self._number(), False
        literal = _LITERALS.get(byte)
        if literal is None:
            raise _error(byte, "looking for beginning of value")
        return self._literal(*literal), False

    def _run(self, container: list[object] | dict[str, object]) -> None:
        """Consume a run of simple elements, each followed by a comma, into ``container``."""
        pattern = _OBJECT_RUN if isinstance(container, dict) else _ARRAY_RUN
        match = pattern.match(self.data, self.pos)
        if match is None:
            return
        run = self.data[self.pos : match.end() - 1].decode("utf-8", errors="replace")
        if isinstance(container, dict):
            container.update(self.runs.decode("{" + run + "}"))
        else:
            container.extend(self.runs.decode("[" + run + "]"))
        self.pos = match.end()

    def _next_significant(self) -> int:
        self._skip_whitespace()
        if self.pos >= self.size:
            raise _eof()
        return self.data[self.pos]

    def _skip_whitespace(self) -> None:
        match = _WHITESPACE.match(self.data, self.pos)
        if match is not None:
            self.pos = match.end()

    def _object_key(self, context: str) -> str:
        byte = self._next_significant()
        if byte != 0x22:
            raise _error(byte, context)
        key = self._string()
        if self._next_significant() != 0x3A:  # :
            raise _error(self.data[self.pos], "after object key")
        self.pos += 1
        return key

    def _string(self) -> str:
        data, start = self.data, self.pos
        pos = start + 1
        while True:
            match = _STRING_RUN.match(data, pos)
            pos = match.end() if match is not None else pos
            if pos >= self.size:
                raise _eof()
            byte = data[pos]
            if byte == 0x22:
                break
            if byte != 0x5C:
                raise _error(byte, "in string literal")
            pos = self._escape(pos + 1)
        self.pos = pos + 1
        text = data[start : pos + 1].decode("utf-8", errors="replace")
        value: str = json.loads(text)
        return value

    def _escape(self, pos: int) -> int:
        """Check the escape after a backslash at ``pos - 1``; the position after it."""
        if pos >= self.size:
            raise _eof()
        byte = self.data[pos]
        if byte in _SIMPLE_ESCAPES:
            return pos + 1
        if byte != 0x75:  # u
            raise _error(byte, "in string escape code")
        for offset in range(1, 5):
            if pos + offset >= self.size:
                raise _eof()
            if self.data[pos + offset] not in _HEX:
                raise _error(self.data[pos + offset], "in \\u hexadecimal character escape")
        return pos + 5

    def _number(self) -> object:
        data, start = self.data, self.pos
        pos = start
        if data[pos] == 0x2D:  # -
            pos += 1
            byte = self._byte(pos)
            if not 0x30 <= byte <= 0x39:
                raise _error(byte, "in numeric literal")
        pos = pos + 1 if data[pos] == 0x30 else self._digits(pos)
        fraction = exponent = False
        if pos < self.size and data[pos] == 0x2E:  # .
            fraction = True
            byte = self._byte(pos + 1)
            if not 0x30 <= byte <= 0x39:
                raise _error(byte, "after decimal point in numeric literal")
            pos = self._digits(pos + 1)
        if pos < self.size and data[pos] in b"eE":
            exponent = True
            pos += 1
            if self._byte(pos) in b"+-":
                pos += 1
            byte = self._byte(pos)
            if not 0x30 <= byte <= 0x39:
                raise _error(byte, "in exponent of numeric literal")
            pos = self._digits(pos)
        self.pos = pos
        literal = data[start:pos].decode("ascii")
        return self.parse_float(literal) if fraction or exponent else self.parse_int(literal)

    def _byte(self, pos: int) -> int:
        if pos >= self.size:
            raise _eof()
        return self.data[pos]

    def _digits(self, pos: int) -> int:
        match = _DIGITS.match(self.data, pos)
        return match.end() if match is not None else pos

    def _literal(self, word: bytes, value: object) -> object:
        for offset in range(1, len(word)):
            byte = self._byte(self.pos + offset)
            if byte != word[offset]:
                expected = chr(word[offset])
                name = word.decode()
                raise _error(byte, f"in literal {name} (expecting '{expected}')")
        self.pos += len(word)
        return value

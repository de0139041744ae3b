"""Read request bodies the way Go's ``encoding/json`` does, and write replies as Go writes them.

Toxiproxy decodes each body with ``json.NewDecoder(body).Decode(&value)``: only the first JSON
value is read (trailing bytes are ignored), keys match struct fields case-insensitively, ``null``
leaves a field unchanged, and a value of the wrong type is an error such as
``json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type
int64``. Clients match on those messages, so this module reproduces them, including for numbers
no Go type can hold (``1e400``, 5,000 digits) and nesting past Go's 10,000 levels
(:mod:`chaos.toxiproxy._goscan`). :func:`encode` writes replies as ``json.Marshal`` does: a
``float32`` in its shortest form, ``<``, ``>`` and ``&`` escaped; never ``Infinity`` or ``NaN``.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from struct import pack, unpack
from typing import Final

from chaos.toxiproxy import _goscan

__all__ = [
    "MISSING",
    "BadBody",
    "Float32",
    "as_bool",
    "as_float32",
    "as_int",
    "as_object",
    "as_object_field",
    "as_string",
    "decode",
    "encode",
    "field",
    "format_float32",
    "kind",
]

_INT_RANGES: Final = {"int64": (-(2**63), 2**63 - 1), "int": (-(2**63), 2**63 - 1)}


class BadBody(Exception):
    """The body is not valid JSON of the expected shape; ``str()`` is Go's error text."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A key that is absent or ``null``: Go leaves the field at its previous value."""


class _Float(float):
    """A JSON number with a fraction or exponent, remembering its literal for error messages."""

    literal: str

    def __new__(cls, literal: str) -> _Float:
        value = super().__new__(cls, literal)
        value.literal = literal
        return value


class _LongInt:
    """A JSON integer too long for any Go number type (and for ``int()``'s digit limit)."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


_LONGEST_INT: Final = 40
"""Digits past which an integer fits no Go type (int64: 19, float32: 39) and stays a literal."""


def _parse_int(literal: str) -> int | _LongInt:
    return int(literal) if len(literal) <= _LONGEST_INT else _LongInt(literal)


def _refuse_constant(name: str) -> object:
    raise ValueError(name)


_DECODER: Final = json.JSONDecoder(
    parse_float=_Float, parse_int=_parse_int, parse_constant=_refuse_constant
)
_WHITESPACE: Final = " \t\r\n"
_NUMBER_START: Final = frozenset("-0123456789")


def decode(body: bytes) -> object:
    """The first JSON value of ``body``; raise :class:`BadBody` with Go's message otherwise."""
    text = body.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise BadBody("EOF")
    if text[start] not in _NUMBER_START:  # Python stops a number where Go reads on ("1.", "1e")
        try:
            value, _end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON, or deeper than Python's recursion allows
            pass
        else:
            return value
    try:
        return _goscan.decode(body, parse_int=_parse_int, parse_float=_Float)
    except _goscan.GoSyntaxError as error:
        raise BadBody(str(error)) from None


def kind(value: object) -> str:
    """Go's name for the JSON kind of ``value`` in type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float | _LongInt):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | _LongInt) and not isinstance(value, bool)


def _literal(value: object) -> str:
    if isinstance(value, _Float | _LongInt):
        return value.literal
    return str(value)


def _type_error(value: object, struct: str, path: str, go_type: str) -> BadBody:
    """A value of the wrong JSON kind (Go names the kind, not the value)."""
    return BadBody(
        f"json: cannot unmarshal {kind(value)} into Go struct field {struct}.{path} "
        f"of type {go_type}"
    )


def _number_error(value: object, struct: str, path: str, go_type: str) -> BadBody:
    """A number that the numeric Go type cannot hold (Go names the number as written)."""
    return BadBody(
        f"json: cannot unmarshal number {_literal(value)} into Go struct field {struct}.{path} "
        f"of type {go_type}"
    )


def as_object(value: object, go_type: str) -> dict[str, object]:
    """``value`` as a JSON object (``null`` is an empty one), or Go's error for ``go_type``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadBody(f"json: cannot unmarshal {kind(value)} into Go value of type {go_type}")
    return value


def as_object_field(value: object, path: str, struct: str) -> dict[str, object]:
    """``value`` of the struct-typed field ``path`` as an object, or Go's type error."""
    if not isinstance(value, dict):
        raise BadBody(
            f"json: cannot unmarshal {kind(value)} into Go struct field .{path} "
            f"of type toxics.{struct}"
        )
    return value


def field(obj: dict[str, object], name: str) -> object:
    """The value Go's decoder leaves in the struct field ``name``, or :data:`MISSING`.

    Go applies the keys in order, each to the field it matches case-insensitively, so the last
    matching key wins, exact or not (``{"name": "a", "NAME": "b"}`` is ``"b"``), and ``null``
    leaves the field as it was. Python's decoders keep one value per key repeated exactly (the
    last, at the place of the first), so there the result can differ from Go's:
    ``{"name": "a", "name": null}`` is MISSING here, ``"a"`` in Go.
    """
    found: object = MISSING
    for key, value in obj.items():
        if value is not None and key.lower() == name:
            found = value
    return found


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def as_string(value: object, struct: str, path: str) -> str:
    """``value`` as a Go string: a lone surrogate (``"\\ud800"``) becomes U+FFFD, as in Go."""
    if not isinstance(value, str):
        raise _type_error(value, struct, path, "string")
    return _SURROGATE.sub("\ufffd", value)


def as_bool(value: object, struct: str, path: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(value, struct, path, "bool")
    return value


def as_int(value: object, struct: str, path: str, go_type: str = "int64") -> int:
    """``value`` as Go's ``int64``/``int``: a JSON integer in range, or Go's error."""
    if not _is_number(value):
        raise _type_error(value, struct, path, go_type)
    low, high = _INT_RANGES[go_type]
    if isinstance(value, int) and not isinstance(value, _Float) and low <= value <= high:
        return value
    raise _number_error(value, struct, path, go_type)


_FLOAT32_OVERFLOW: Final = Decimal(2**128 - 2**103)
"""Half an ulp above the largest float32: a number this large rounds to infinity (Go: error)."""
_FLOAT32_E_BELOW: Final = unpack("<f", pack("<f", 1e-6))[0]
_FLOAT32_E_FROM: Final = unpack("<f", pack("<f", 1e21))[0]


def as_float32(value: object, struct: str, path: str) -> float:
    """``value`` rounded to Go's ``float32``, or Go's error when it is not a number or overflows.

    Numbers too small for a float32 become 0, as Go's ``strconv.ParseFloat`` makes them.
    """
    if not _is_number(value):
        raise _type_error(value, struct, path, "float32")
    if Decimal(_literal(value)).copy_abs() >= _FLOAT32_OVERFLOW:  # exact: abs() rounds
        raise _number_error(value, struct, path, "float32")
    return _round_float32(float(_literal(value)))


def _round_float32(value: float) -> float:
    try:
        rounded: float = unpack("<f", pack("<f", value))[0]
    except OverflowError:  # a float64 at the exact half-ulp boundary; the decimal was below it
        return math.copysign(unpack("<f", b"\xff\xff\x7f\x7f")[0], value)
    return rounded


class Float32(float):
    """A float32 value in a reply: :func:`encode` writes it as Go writes a ``float32``."""


def format_float32(value: float) -> str:
    """``value`` (a float32) as Go's ``json.Marshal`` writes it: its shortest digits that read
    back to the same float32, in ``e`` notation below 1e-6 and from 1e21 (``1e-7``, ``1e+21``),
    else in plain notation (``0.00001``, ``100000000000000000000``)."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not JSON")
    value = _round_float32(value)
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent = _shortest_float32(abs(value))
    sign = "-" if value < 0 else ""
    if abs(value) < _FLOAT32_E_BELOW or abs(value) >= _FLOAT32_E_FROM:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        # strconv's 'e' pads the exponent to two digits; json.Marshal then writes e-07 as e-7
        shown = f"-{-exponent}" if exponent < 0 else f"+{exponent:02d}"
        return f"{sign}{mantissa}e{shown}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    if len(digits) <= exponent + 1:
        return f"{sign}{digits}{'0' * (exponent + 1 - len(digits))}"
    return f"{sign}{digits[: exponent + 1]}.{digits[exponent + 1 :]}"


def _shortest_float32(value: float) -> tuple[str, int]:
    """The fewest significant digits (and the decimal exponent of the first) that round back to
    the float32 ``value``; among candidates of that length, the nearest to it."""
    for precision in range(1, 10):
        text = f"{value:.{precision - 1}e}"
        mantissa, _, exponent_text = text.partition("e")
        exponent = int(exponent_text)
        nearest = int(mantissa.replace(".", ""))
        # Only the nearest and the one above it can read back: the one below the nearest is at
        # least as far from the value as the nearest is, and a float32 reads back from no
        # farther below it than above it (at a power of 2, from half as far).
        for candidate in (nearest, nearest + 1):
            digits = str(candidate)
            shift = exponent + len(digits) - precision
            try:
                back = unpack("<f", pack("<f", float(f"{digits[0]}.{digits[1:] or '0'}e{shift}")))
            except OverflowError:  # past the largest float32: not a way to write it
                continue
            if back[0] == value:
                return digits.rstrip("0"), shift  # a candidate starts with 1-9
    raise AssertionError(f"no shortest form for {value!r}")  # 9 digits always round-trip


_HTML_ESCAPES: Final = re.compile("[<>&\u2028\u2029]")
_encode_basestring: Final = json.encoder.encode_basestring


def encode(value: object) -> str:
    """``value`` (dicts, lists, str, int, bool, None, :class:`Float32`) as Go's ``json.Marshal``
    writes it; any other float is refused, so no reply can carry ``Infinity`` or ``NaN``."""
    out: list[str] = []
    _encode_into(value, out)
    return "".join(out)


def _encode_into(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Float32):
        out.append(format_float32(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _encode_into(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode_into(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as Go JSON")


def _encode_string(text: str) -> str:
    encoded: str = _encode_basestring(text)
    if _HTML_ESCAPES.search(encoded):
        encoded = _HTML_ESCAPES.sub(lambda match: f"\\u{ord(match.group()):04x}", encoded)
    return encoded

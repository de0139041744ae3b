"""Read request bodies the way Go's ``encoding/json`` does, with Go's error wording.

Toxiproxy decodes each body with ``json.NewDecoder(body).Decode(&value)``: only the first JSON
value is read (trailing bytes are ignored), keys match struct fields case-insensitively, ``null``
leaves a field unchanged, and a value of the wrong type is an error such as
``json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type
int64``. Clients match on those messages, so this module reproduces them.
"""

from __future__ import annotations

import json
from typing import Final

__all__ = [
    "MISSING",
    "BadBody",
    "as_bool",
    "as_float32",
    "as_int",
    "as_object",
    "as_object_field",
    "as_string",
    "decode",
    "field",
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


def _refuse_constant(name: str) -> object:
    raise ValueError(name)


_DECODER: Final = json.JSONDecoder(parse_float=_Float, parse_constant=_refuse_constant)
_WHITESPACE: Final = " \t\r\n"


def decode(body: bytes) -> object:
    """The first JSON value of ``body``; raise :class:`BadBody` with Go's message otherwise."""
    text = body.decode("utf-8", errors="replace").lstrip(_WHITESPACE)
    if not text:
        raise BadBody("EOF")
    try:
        value, _end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as error:
        raise BadBody(_syntax_message(text, error)) from None
    except ValueError:
        raise BadBody("invalid character 'N' looking for beginning of value") from None
    return value


def _syntax_message(text: str, error: json.JSONDecodeError) -> str:
    if error.pos >= len(text) or error.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = text[error.pos]
    if error.msg.startswith("Expecting property name"):
        context = "looking for beginning of object key string"
    elif error.msg.startswith("Expecting ':'"):
        context = "after object key"
    elif error.msg.startswith("Expecting ','"):
        context = (
            "after object key:value pair"
            if _innermost_is_object(text, error.pos)
            else ("after array element")
        )
    elif error.msg.startswith("Invalid control character"):
        context = "in string literal"
    else:
        context = "looking for beginning of value"
    return f"invalid character {_go_quote_char(char)} {context}"


def _innermost_is_object(text: str, pos: int) -> bool:
    depth_stack: list[str] = []
    in_string = False
    escaped = False
    for char in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth_stack.append(char)
        elif char in "}]" and depth_stack:
            depth_stack.pop()
    return bool(depth_stack) and depth_stack[-1] == "{"


def _go_quote_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char.isprintable():
        return f"'{char}'"
    return json.dumps(char)[1:-1].join("''")


def kind(value: object) -> str:
    """Go's name for the JSON kind of ``value`` in type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: object, struct: str, path: str, go_type: str) -> BadBody:
    shown = kind(value)
    if isinstance(value, _Float):
        shown = f"number {value.literal}"
    return BadBody(
        f"json: cannot unmarshal {shown} into Go struct field {struct}.{path} of type {go_type}"
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
    """The value of key ``name`` (case-insensitive, last one wins, like Go), or :data:`MISSING`."""
    found: object = MISSING
    exact: object = MISSING
    for key, value in obj.items():
        if key == name:
            exact = value
        elif key.lower() == name:
            found = value
    result = exact if exact is not MISSING else found
    return MISSING if result is None else result


def as_string(value: object, struct: str, path: str) -> str:
    if not isinstance(value, str):
        raise _type_error(value, struct, path, "string")
    return value


def as_bool(value: object, struct: str, path: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(value, struct, path, "bool")
    return value


def as_int(value: object, struct: str, path: str, go_type: str = "int64") -> int:
    low, high = _INT_RANGES[go_type]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        if isinstance(value, int) and not isinstance(value, bool):
            raise BadBody(
                f"json: cannot unmarshal number {value} into Go struct field {struct}.{path} "
                f"of type {go_type}"
            )
        raise _type_error(value, struct, path, go_type)
    return value


def as_float32(value: object, struct: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, struct, path, "float32")
    return float(value)

"""The iterative Go scanner agrees with Python's ``json`` wherever both can answer.

:mod:`chaos.toxiproxy._goscan` reads what Python's ``json`` refuses or cannot nest into. On any
document shallow enough for Python, both must accept the same bytes with the same value, and
refuse the same bytes. The exact Go messages are pinned in ``test_json_limits.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.toxiproxy import _goscan
from chaos.toxiproxy._gojson import BadBody, decode


def _refuse(name: str) -> object:
    raise ValueError(name)


_PYTHON = json.JSONDecoder(parse_constant=_refuse)


def _python(data: bytes) -> tuple[bool, Any]:
    text = data.decode("utf-8", errors="replace")
    stripped = text.lstrip(" \t\r\n")
    try:
        return True, _PYTHON.raw_decode(stripped)[0]
    except ValueError:
        return False, None


def _scanner(data: bytes) -> tuple[bool, Any]:
    try:
        return True, _goscan.decode(data, parse_int=int, parse_float=float)
    except _goscan.GoSyntaxError:
        return False, None


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_DOCUMENTS, st.sampled_from([None, 0, 2]), st.booleans())
def test_every_document_reads_back_as_python_reads_it(
    document: object, indent: int | None, ascii_only: bool
) -> None:
    data = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()
    assert _scanner(data) == (True, document)


@settings(max_examples=600, deadline=None)
@given(_DOCUMENTS, st.data())
def test_a_damaged_document_is_refused_exactly_when_python_refuses_it(
    document: object, data: st.DataObject
) -> None:
    text = json.dumps(document).encode()
    position = data.draw(st.integers(0, len(text)))
    damage = data.draw(
        st.sampled_from(
            [b"", b",", b"]", b"}", b"[", b"{", b'"', b"\\", b":", b"x", b"\x01", b"-", b".", b"e"]
        )
    )
    cut = data.draw(st.booleans())
    damaged = text[:position] + damage + (b"" if cut else text[position:])
    # Inside an array: at the top level Python ends a number where Go reads on ("1." is a
    # complete 1 to Python, unexpected EOF to Go), which decode() sends to the scanner.
    wrapped = b"[" + damaged + b"]"
    assert _scanner(wrapped) == _python(wrapped)


def test_decode_falls_back_to_the_scanner_only_where_python_cannot_nest() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    value: Any = decode(deep)
    for _ in range(4999):
        value = value[0]
    assert value == []
    with pytest.raises(BadBody, match=r"^invalid character '\[' exceeded max depth$"):
        decode(b"[" * (_goscan.MAX_DEPTH + 1))
    assert decode(b"[" * _goscan.MAX_DEPTH + b"]" * _goscan.MAX_DEPTH) is not None


@pytest.mark.parametrize(
    ("byte", "shown"),
    [
        (ord("x"), "'x'"),
        (ord("'"), "'\\''"),
        (ord('"'), "'\"'"),
        (ord("\\"), "'\\\\'"),
        (ord("#"), "'#'"),
        (ord("&"), "'&'"),
        (0x00, "'\\x00'"),
        (0x07, "'\\a'"),
        (0x08, "'\\b'"),
        (0x09, "'\\t'"),
        (0x0A, "'\\n'"),
        (0x0C, "'\\f'"),
        (0x0D, "'\\r'"),
        (0x0E, "'\\x0e'"),
        (0x06, "'\\x06'"),
        (0x0B, "'\\v'"),
        (0x7F, "'\\x7f'"),
        (0x80, "'\\u0080'"),
        (0x85, "'\\u0085'"),
        (0xA0, "'\\u00a0'"),
        (0xE9, "'é'"),
    ],
)
def test_a_byte_is_named_as_gos_quotechar_names_it(byte: int, shown: str) -> None:
    assert _goscan.quote_byte(byte) == shown


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "EOF"),
        (b"  \n", "EOF"),
        (b"[", "unexpected EOF"),
        (b'{"a"', "unexpected EOF"),
        (b'{"a":', "unexpected EOF"),
        (b'"abc', "unexpected EOF"),
        (b'"\\u12', "unexpected EOF"),
        (b"-", "unexpected EOF"),
        (b"1.", "unexpected EOF"),
        (b"1e+", "unexpected EOF"),
        (b"tr", "unexpected EOF"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"{1:2}", "invalid character '1' looking for beginning of object key string"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a":[],}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a":[],1}', "invalid character '1' looking for beginning of object key string"),
        (b"[1,]", "invalid character ']' looking for beginning of value"),
        (b"\xff", "invalid character '\u00ff' looking for beginning of value"),
        (b"-a", "invalid character 'a' in numeric literal"),
        (b"1.e5", "invalid character 'e' after decimal point in numeric literal"),
        (b"1e+a", "invalid character 'a' in exponent of numeric literal"),
        (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
        (b"fAlse", "invalid character 'A' in literal false (expecting 'a')"),
        (b"nil", "invalid character 'i' in literal null (expecting 'u')"),
        (b'"\\q"', "invalid character 'q' in string escape code"),
        (b'"\\u00zz"', "invalid character 'z' in \\u hexadecimal character escape"),
        (b'"a\nb"', "invalid character '\\n' in string literal"),
        (b'"\\X"', "invalid character 'X' in string escape code"),
        (b'"\\', "unexpected EOF"),
        (b"1eX5", "invalid character 'X' in exponent of numeric literal"),
        # ':' is the byte after '9': not a digit, after a decimal point or in an exponent
        (b"1.:", "invalid character ':' after decimal point in numeric literal"),
        (b"1e:", "invalid character ':' in exponent of numeric literal"),
        (b"[1X]", "invalid character 'X' after array element"),
        (b'"\\uX"', "invalid character 'X' in \\u hexadecimal character escape"),
        (b'"\\u0"', "invalid character '\"' in \\u hexadecimal character escape"),
    ],
)
def test_syntax_errors_are_gos(data: bytes, message: str) -> None:
    with pytest.raises(BadBody) as caught:
        decode(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"1x", 1),  # Go's decoder stops after the first value; the rest is not read
        (b"[[1],2,[3]]", [[1], 2, [3]]),  # no space after the comma that follows a container
        # Bytes that are not UTF-8 become U+FFFD, as Go decodes them: in a string read alone
        # and in a run of simple elements.
        (b'"a\xffb"', "a\ufffdb"),
        (b'[["\xff", 1, "\xc3\xa9"]]', [["\ufffd", 1, "\u00e9"]]),
        (b"1X", 1),
        (b"0", 0),
        (b"-1.5e+2", -150.0),
        (b"[1]garbage", [1]),
        (b' {"a": [1, "x", true, null, -0.5e1, {}]} ', {"a": [1, "x", True, None, -5.0, {}]}),
        (b'{"a":1,"a":2}', {"a": 2}),
        (b'["\\ud83d\\ude00", "\\u00e9"]', ["\U0001f600", "\u00e9"]),
        (b'[1, 2, 3, "a", "b", [4, 5, 6, 7], {"k": "v", "l": 8, "m": [9]}]', None),
    ],
)
def test_the_scanner_reads_what_go_reads(data: bytes, value: object) -> None:
    expected = json.loads(data.split(b"garbage")[0].rstrip(b"x")) if value is None else value
    assert _goscan.decode(data, parse_int=int, parse_float=float) == expected


@pytest.mark.parametrize(
    ("data", "steps"),
    [
        # Each element of the run: whitespace of every kind, every number form, escapes, words.
        (b'[1, -2.5e+3 ,"a\\"\\u00e9\\n/" ,\ttrue,\r\nfalse, null, 0, 1E-2, 7]', 2),
        (b'{"a" : 1, "b":"x" ,\n"c":true, "d": null, "e": -0.5, "f": 2}', 2),
        (b"[[1], 2, 3, 4]", 4),  # a run after the comma that follows a container
        (b'{"a": {}, "b": 1, "c": 2}', 3),
    ],
)
def test_a_run_of_simple_elements_is_read_in_one_step(
    monkeypatch: pytest.MonkeyPatch, data: bytes, steps: int
) -> None:
    begin = _goscan._Reader._begin_value
    calls: list[int] = []

    def counting(reader: Any, stack: Any, keys: Any) -> tuple[object, bool]:
        calls.append(reader.pos)
        return begin(reader, stack, keys)

    monkeypatch.setattr(_goscan._Reader, "_begin_value", counting)
    assert _goscan.decode(data, parse_int=int, parse_float=float) == json.loads(data)
    assert len(calls) == steps, calls


@pytest.mark.parametrize("data", [b"", b" \t\r\n"])
def test_the_scanner_reads_nothing_as_eof(data: bytes) -> None:
    with pytest.raises(_goscan.GoSyntaxError, match=r"^EOF$"):
        _goscan.decode(data, parse_int=int, parse_float=float)

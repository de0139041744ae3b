"""Go's ``encoding/json`` as the API reads and writes it, function by function, without a server.

``test_json_limits.py`` and ``test_bad_input.py`` pin the same messages through the HTTP API;
these pin each rule where it is made: how a key matches a struct field, the ranges of Go's
numbers, the float32 boundary, and how ``json.Marshal`` writes a float32 and escapes a string.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from struct import pack, unpack

import pytest

from chaos.toxiproxy import _gojson
from chaos.toxiproxy._gojson import (
    MISSING,
    BadBody,
    Float32,
    as_bool,
    as_float32,
    as_int,
    as_object,
    as_object_field,
    as_string,
    decode,
    encode,
    field,
    format_float32,
    kind,
)


def _f32(value: float) -> float:
    rounded: float = unpack("<f", pack("<f", value))[0]
    return rounded


def _from_bits(bits: int) -> float:
    value: float = unpack("<f", bits.to_bytes(4, "little"))[0]
    return value


_MAX_FLOAT32 = _from_bits(0x7F7FFFFF)
_HALF_ULP_ABOVE_MAX = 2**128 - 2**103  # a literal this large rounds to infinity


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "value"),
    [
        ({"name": "a"}, "a"),
        ({"Name": "a"}, "a"),
        ({"NAME": "a", "other": "b"}, "a"),
        ({"name": "a", "NAME": "b"}, "b"),  # the last key wins, exact or not, as in Go
        ({"NAME": "a", "name": "b"}, "b"),
        ({"NAME": "a", "name": None}, "a"),  # null leaves the field as it was
        ({"name": "a", "Name": None}, "a"),
        ({"name": None}, MISSING),
        ({"names": "a", "nam": "b"}, MISSING),
        ({}, MISSING),
    ],
)
def test_a_key_matches_its_field_case_insensitively_and_the_last_one_wins(
    obj: dict[str, object], value: object
) -> None:
    assert field(obj, "name") == value


def test_missing_shows_itself_by_name() -> None:
    assert repr(MISSING) == "MISSING"


def test_null_is_an_empty_object_and_other_kinds_are_gos_type_error() -> None:
    assert as_object(None, "toxiproxy.Proxy") == {}
    assert as_object({"a": 1}, "toxiproxy.Proxy") == {"a": 1}
    with pytest.raises(BadBody) as caught:
        as_object([], "toxiproxy.Proxy")
    assert str(caught.value) == "json: cannot unmarshal array into Go value of type toxiproxy.Proxy"
    with pytest.raises(BadBody) as caught:
        as_object_field(None, "attributes", "NoopToxic")
    assert str(caught.value) == (
        "json: cannot unmarshal object into Go struct field .attributes of type toxics.NoopToxic"
    )


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (True, "bool"),
        (False, "bool"),
        ("1", "string"),
        (1, "number"),
        (decode(b"1.5"), "number"),
        (decode(b"9" * 50), "number"),
        ([], "array"),
        ({}, "object"),
        (None, "object"),
    ],
)
def test_kinds_are_named_as_go_names_them(value: object, name: str) -> None:
    assert kind(value) == name


# -- strings and bools -------------------------------------------------------------------------


def test_a_lone_surrogate_becomes_the_replacement_character_and_nothing_else_changes() -> None:
    assert as_string("aX\ud800b\udfff", "Proxy", "name") == "aX\ufffdb\ufffd"
    assert as_string("\U0001f600", "Proxy", "name") == "\U0001f600"
    with pytest.raises(BadBody) as caught:
        as_string(True, "Proxy", "name")
    assert str(caught.value) == (
        "json: cannot unmarshal bool into Go struct field Proxy.name of type string"
    )


def test_a_bool_is_only_a_bool() -> None:
    assert as_bool(False, "Proxy", "enabled") is False
    with pytest.raises(BadBody) as caught:
        as_bool(0, "Proxy", "enabled")
    assert str(caught.value) == (
        "json: cannot unmarshal number into Go struct field Proxy.enabled of type bool"
    )


# -- integers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("go_type", ["int64", "int"])
@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 0])
def test_the_whole_int64_range_is_accepted(go_type: str, value: int) -> None:
    assert as_int(decode(str(value).encode()), "S", "attributes.x", go_type) == value


@pytest.mark.parametrize("go_type", ["int64", "int"])
@pytest.mark.parametrize("literal", [str(2**63), str(-(2**63) - 1), "1.0", "1e2", "9" * 50])
def test_numbers_an_int64_cannot_hold_are_named_as_written(go_type: str, literal: str) -> None:
    with pytest.raises(BadBody) as caught:
        as_int(decode(literal.encode()), "LatencyToxic", "attributes.latency", go_type)
    assert str(caught.value) == (
        f"json: cannot unmarshal number {literal} into Go struct field "
        f"LatencyToxic.attributes.latency of type {go_type}"
    )


def test_an_int_is_an_int64_unless_told_otherwise() -> None:
    assert as_int(decode(b"7"), "S", "attributes.x") == 7
    with pytest.raises(BadBody) as caught:
        as_int(decode(b"1.5"), "S", "attributes.x")
    assert str(caught.value) == (
        "json: cannot unmarshal number 1.5 into Go struct field S.attributes.x of type int64"
    )


@pytest.mark.parametrize(("value", "shown"), [(True, "bool"), ("1", "string"), ([1], "array")])
def test_an_int_of_the_wrong_kind_is_a_type_error(value: object, shown: str) -> None:
    with pytest.raises(BadBody) as caught:
        as_int(value, "SlicerToxic", "attributes.delay", "int")
    assert str(caught.value) == (
        f"json: cannot unmarshal {shown} into Go struct field SlicerToxic.attributes.delay "
        "of type int"
    )


# -- float32 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", ["", "-"])
def test_float32_overflows_from_half_an_ulp_above_its_largest_value(sign: str) -> None:
    below = f"{sign}{_HALF_ULP_ABOVE_MAX - 1}"
    assert as_float32(decode(below.encode()), "ToxicWrapper", "toxicity") == float(
        f"{sign}{_MAX_FLOAT32!r}"
    )
    largest = f"{sign}{int(_MAX_FLOAT32)}"
    assert as_float32(decode(largest.encode()), "ToxicWrapper", "toxicity") == float(
        f"{sign}{_MAX_FLOAT32!r}"
    )
    for literal in (f"{sign}{_HALF_ULP_ABOVE_MAX}", f"{sign}3.5e38", f"{sign}1e39"):
        with pytest.raises(BadBody) as caught:
            as_float32(decode(literal.encode()), "ToxicWrapper", "toxicity")
        assert str(caught.value) == (
            f"json: cannot unmarshal number {literal} into Go struct field "
            "ToxicWrapper.toxicity of type float32"
        )


def test_float32_rounds_and_underflows_to_zero() -> None:
    assert as_float32(decode(b"0.1"), "", "toxicity") == _f32(0.1)
    assert as_float32(decode(b"100"), "", "toxicity") == 100.0
    assert as_float32(decode(b"1e20"), "", "toxicity") == _f32(1e20)
    assert as_float32(decode(b"1e-50"), "", "toxicity") == 0.0
    with pytest.raises(BadBody) as caught:
        as_float32(False, "", "toxicity")
    assert str(caught.value) == (
        "json: cannot unmarshal bool into Go struct field .toxicity of type float32"
    )


def _reads_back(number: Decimal, value: float) -> bool:
    """Whether the decimal ``number`` rounds (to nearest, ties to even) to the float32 ``value``
    (positive), computed exactly from the neighbours of ``value``."""
    bits = int.from_bytes(pack("<f", value), "little")
    exact = Decimal(value)
    below = Decimal(_from_bits(bits - 1))
    above = Decimal(_from_bits(bits + 1)) if bits < 0x7F7FFFFF else Decimal(2**128)
    low, high = (below + exact) / 2, (exact + above) / 2
    if low < number < high:
        return True
    return number in (low, high) and bits % 2 == 0


def _go_shortest(value: float) -> Decimal:
    """strconv.FormatFloat(v, 'g', -1, 32)'s value: the fewest significant digits that read back
    as the (positive) float32 ``value``, and of those the nearest to it."""
    exact = Decimal(value)
    for precision in range(1, 10):
        unit = Decimal(1).scaleb(exact.adjusted() - precision + 1)
        scaled = exact / unit
        candidates = [
            Decimal(whole) * unit
            for whole in {
                int(scaled.to_integral_value(rounding=mode))
                for mode in ("ROUND_FLOOR", "ROUND_CEILING")
            }
        ]
        found = [number for number in candidates if number > 0 and _reads_back(number, value)]
        if found:
            # the nearest; of two as near, the even one (strconv rounds half to even)
            best = min(
                found, key=lambda number: (abs(number - exact), number.scaleb(-unit.adjusted()) % 2)
            )
            return best.normalize()
    raise AssertionError(value)


def _go_format(value: float) -> str:
    """json.Marshal of a float32, built from the shortest digits (the reference)."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits = _go_shortest(abs(value))
    sign = "-" if value < 0 else ""
    if abs(value) < _f32(1e-6) or abs(value) >= _f32(1e21):
        text = f"{digits:e}".replace("E", "e")
        mantissa, _, exponent = text.partition("e")
        number = int(exponent)
        shown = f"-{-number}" if number < 0 else f"+{number:02d}"
        return f"{sign}{mantissa}e{shown}"
    return sign + f"{digits:f}"


def _sample() -> list[float]:
    rng = random.Random(20260602)
    values = [_from_bits(bits) for bits in (1, 2, 3, 0x007FFFFF, 0x00800000, 0x7F7FFFFF)]
    values += [_f32(2.0**exponent) for exponent in range(-149, 128)]
    values += [_from_bits(rng.getrandbits(31)) for _ in range(1500)]
    values += [_f32(rng.uniform(0, 2)) for _ in range(300)]
    return [value for value in values if math.isfinite(value)]


def test_a_float32_is_written_in_its_shortest_form_nearest_to_it() -> None:
    for value in _sample():
        assert format_float32(value) == _go_format(value), value.hex()
        assert format_float32(-value) == _go_format(-value), value.hex()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (12.0, "12"),
        (100.0, "100"),
        (123.5, "123.5"),
        (0.5, "0.5"),
        (_f32(0.1), "0.1"),
        (_f32(0.00001), "0.00001"),
        (_f32(1e-6), "0.000001"),
        (_from_bits(0x358637BC), "9.999999e-7"),  # the float32 just below 1e-6
        (_f32(1.5e-7), "1.5e-7"),
        (_from_bits(1), "1e-45"),
        (_f32(1e20), "100000000000000000000"),
        (_from_bits(0x6258D726), "999999950000000000000"),  # just below 1e21
        (_f32(1e21), "1e+21"),
        (_f32(1.2345e22), "1.2345e+22"),
        (_MAX_FLOAT32, "3.4028235e+38"),
        (-_MAX_FLOAT32, "-3.4028235e+38"),
        (-1.5, "-1.5"),
    ],
)
def test_float32_is_written_as_json_marshal_writes_it(value: float, shown: str) -> None:
    assert format_float32(value) == shown
    assert encode(Float32(value)) == shown


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_infinity_and_nan_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match=r"^(-?inf|nan) is not JSON$"):
        format_float32(value)


def test_a_float64_beyond_float32_is_written_as_the_largest_float32() -> None:
    assert format_float32(float(_HALF_ULP_ABOVE_MAX)) == "3.4028235e+38"
    assert format_float32(-float(_HALF_ULP_ABOVE_MAX)) == "-3.4028235e+38"


# -- encode ------------------------------------------------------------------------------------


def test_encode_writes_compact_json_with_keys_in_order() -> None:
    value = {"b": [1, True, False, None, "x"], "a": {}, "c": (), "d": Float32(0.5), "e": -3}
    assert encode(value) == '{"b":[1,true,false,null,"x"],"a":{},"c":[],"d":0.5,"e":-3}'


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("X", '"X"'),
        ('q"\\\n\t\x01é', '"q\\"\\\\\\n\\t\\u0001é"'),
    ],
)
def test_strings_are_escaped_as_go_escapes_them(text: str, encoded: str) -> None:
    assert encode(text) == encoded
    assert encode({text: 1}) == "{" + encoded + ":1}"


@pytest.mark.parametrize(("value", "name"), [(0.5, "float"), (b"x", "bytes"), ({1}, "set")])
def test_encode_refuses_what_go_json_cannot_carry(value: object, name: str) -> None:
    with pytest.raises(TypeError) as caught:
        encode([value])
    assert str(caught.value) == f"cannot encode {name} as Go JSON"


# -- decode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b" \t\r\n", "EOF"),
        (b"X", "invalid character 'X' looking for beginning of value"),
        (b"\x0c1", "invalid character '\\f' looking for beginning of value"),
        # Go's whitespace is space, tab, CR and LF only: other whitespace is not skipped, before
        # a value Python would read or at the end of the body
        (b"\x0c[1]", "invalid character '\\f' looking for beginning of value"),
        (b"\x0b{}", "invalid character '\\v' looking for beginning of value"),
        (
            b'\xc2\xa0"a"',
            "invalid character '\u00c2' looking for beginning of value",
        ),  # Go names a byte
        (b" \x0c", "invalid character '\\f' looking for beginning of value"),
        (b"\xa01", "invalid character '\\u00a0' looking for beginning of value"),
        (b"  x", "invalid character 'x' looking for beginning of value"),
        (b"1.", "unexpected EOF"),
        (b"-", "unexpected EOF"),
        (b"NaN", "invalid character 'N' looking for beginning of value"),
        (b"[Infinity]", "invalid character 'I' looking for beginning of value"),
    ],
)
def test_decode_errors_are_gos(body: bytes, message: str) -> None:
    with pytest.raises(BadBody) as caught:
        decode(body)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b' {"a": [1, 2.5, "x", true, null]} trailing', {"a": [1, 2.5, "x", True, None]}),
        (b"\n-12 ", -12),
        (b"0", 0),
        (b'"\\u00e9"', "\u00e9"),
        (b'["\xff", "\xc3\xa9"]', ["\ufffd", "\u00e9"]),  # bytes that are not UTF-8
    ],
)
def test_decode_reads_the_first_value(body: bytes, value: object) -> None:
    assert decode(body) == value


def test_numbers_keep_their_literal_for_error_messages() -> None:
    value = decode(b"[1.50, 1E+2, 123456789012345678901234567890123456789012345]")
    assert isinstance(value, list)
    assert [_gojson._literal(item) for item in value] == [
        "1.50",
        "1E+2",
        "123456789012345678901234567890123456789012345",
    ]

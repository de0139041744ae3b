"""One way to check what a caller passes: options fields and constructor arguments alike.

Every options class declares each field with :func:`option` (its default and its
:class:`Rule`) and calls :func:`check_fields` in ``__post_init__``; a constructor checks its
own arguments with :func:`check`. The rules are the same everywhere:

- a wrong type raises :class:`~resilient.errors.ArgumentTypeError` (a ``TypeError``), a bad
  value :class:`~resilient.errors.ArgumentValueError` (a ``ValueError``);
- a bool is never a number (``True`` is not ``1`` seconds), NaN is never a number, and an
  infinity is refused unless the rule allows it;
- every message names ``Class.field`` and the value given, e.g.
  ``GuardOptions.timeout must be a finite number of seconds > 0, got nan`` (the value shown
  in at most about a hundred characters, and even when its own ``repr`` fails);
- a value is judged, and kept, as the builtin it is an instance of (an ``int`` or ``float``
  subclass cannot lie its way past a bound through its own comparisons), and a number is kept
  as a ``float``, so an int too large for one is refused like any out-of-range value.

The rules are data (:attr:`dataclasses.Field.metadata`), so tests read them to attack every
field of every options class.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from resilient.errors import ArgumentTypeError, ArgumentValueError

__all__ = [
    "Choice",
    "Instance",
    "Integer",
    "Number",
    "Rule",
    "Text",
    "TupleOf",
    "check",
    "check_fields",
    "option",
    "rule_of",
    "shown",
]

T = TypeVar("T")

_RULE = "resilient.rule"


class Rule:
    """What a value must be. :meth:`check` raises an ``ArgumentError`` naming ``where``."""

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def type_ok(self, value: object) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def plain(self, value: Any) -> Any:
        """``value`` as the builtin the rule judges and keeps (it passed :meth:`type_ok`);
        raises ValueError or OverflowError when there is no such value."""
        return value

    def value_ok(self, value: Any) -> bool:
        return True

    def check(self, where: str, value: object) -> Any:
        """The value as kept (see :meth:`plain`); an ``ArgumentError`` naming ``where``."""
        if not self.type_ok(value):
            raise ArgumentTypeError(f"{where} must be {self.describe()}, got {shown(value)}")
        try:
            plain = self.plain(value)
        except (ValueError, OverflowError):
            plain = _NO_VALUE
        if plain is _NO_VALUE or not self.value_ok(plain):
            raise ArgumentValueError(f"{where} must be {self.describe()}, got {shown(value)}")
        return plain


_NO_VALUE: Any = object()

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 100


def shown(value: object) -> str:
    """``repr(value)`` in at most about 100 characters, whatever the value."""
    try:
        return _SHOWN.repr(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer(Rule):
    """An ``int`` (never a bool) within ``[min, max]``."""

    min: int | None = None
    max: int | None = None

    def describe(self) -> str:
        return "an int" + _range_text(self.min, self.max, min_open=False)

    def type_ok(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def plain(self, value: int) -> int:
        return int.__int__(value)

    def value_ok(self, value: int) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class Number(Rule):
    """An int or float (never a bool, never NaN) above ``min`` (or at it, unless
    ``min_open``) and at most ``max``; infinite only when ``finite`` is False."""

    min: float | None = None
    min_open: bool = False
    max: float | None = None
    finite: bool = True
    unit: str = ""

    def describe(self) -> str:
        what = "a finite number" if self.finite else "a number"
        unit = f" of {self.unit}" if self.unit else ""
        return what + unit + _range_text(self.min, self.max, min_open=self.min_open)

    def type_ok(self, value: object) -> bool:
        return _is_number(value)

    def plain(self, value: float) -> float:
        if isinstance(value, int):
            return float(int.__int__(value))  # OverflowError beyond a float
        return float.__float__(value)

    def value_ok(self, value: float) -> bool:
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        if self.min is not None and (value <= self.min if self.min_open else value < self.min):
            return False
        return self.max is None or value <= self.max


@dataclass(frozen=True)
class Text(Rule):
    """A ``str``; non-empty when ``non_empty``."""

    non_empty: bool = False

    def describe(self) -> str:
        return "a non-empty str" if self.non_empty else "a str"

    def type_ok(self, value: object) -> bool:
        return isinstance(value, str)

    def plain(self, value: str) -> str:
        return str.__str__(value)

    def value_ok(self, value: str) -> bool:
        return bool(value) or not self.non_empty


@dataclass(frozen=True)
class Choice(Rule):
    """A member of ``enum`` (an :class:`enum.Enum` class), or one of the strings ``values``."""

    enum: type[enum.Enum] | None = None
    values: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.enum is not None:
            return f"a {self.enum.__name__}"
        return "one of " + ", ".join(repr(value) for value in self.values)

    def type_ok(self, value: object) -> bool:
        return isinstance(value, self.enum) if self.enum is not None else isinstance(value, str)

    def plain(self, value: Any) -> Any:
        return value if self.enum is not None else str.__str__(value)

    def value_ok(self, value: object) -> bool:
        return self.enum is not None or value in self.values


@dataclass(frozen=True)
class Instance(Rule):
    """An instance of ``kind`` (a class, or a tuple of classes)."""

    kind: type[Any] | tuple[type[Any], ...]
    name: str

    def describe(self) -> str:
        return self.name

    def type_ok(self, value: object) -> bool:
        return isinstance(value, self.kind)


@dataclass(frozen=True)
class TupleOf(Rule):
    """A ``tuple`` whose every item passes ``item`` (a predicate), described as ``name``."""

    item: Callable[[object], bool]
    name: str

    def describe(self) -> str:
        return self.name

    def type_ok(self, value: object) -> bool:
        return isinstance(value, tuple) and all(self.item(entry) for entry in value)


def _bound(value: float) -> str:
    """A bound as written, exactly: an int in full, a float to 15 digits (``1e+300``,
    ``315360000``, ``0.02``), never rounded to six as ``:g`` would."""
    return str(value) if isinstance(value, int) else f"{value:.15g}"


def _range_text(low: float | None, high: float | None, *, min_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if min_open else '>='} {_bound(low)}")
    if high is not None:
        parts.append(f"<= {_bound(high)}")
    return (" " + " and ".join(parts)) if parts else ""


def option(default: T, rule: Rule) -> T:
    """A dataclass field with ``default``, whose value must pass ``rule`` (:func:`check_fields`)."""
    field: T = dataclasses.field(default=default, metadata={_RULE: rule})
    return field


def rule_of(field: dataclasses.Field[Any]) -> Rule | None:
    """The :class:`Rule` a field was declared with through :func:`option` (None otherwise)."""
    rule = field.metadata.get(_RULE)
    return rule if isinstance(rule, Rule) else None


def check_fields(instance: Any) -> None:
    """Check every field of the (frozen) dataclass ``instance`` against its rule, in
    declaration order, and keep each value as its rule keeps it."""
    owner = type(instance).__name__
    for field in dataclasses.fields(instance):
        rule = rule_of(field)
        if rule is not None:
            value = getattr(instance, field.name)
            plain = rule.check(f"{owner}.{field.name}", value)
            if plain is not value:
                object.__setattr__(instance, field.name, plain)


def check(where: str, value: T, rule: Rule) -> T:
    """``value`` as ``rule`` keeps it (e.g. an int as a float for a :class:`Number`) if it
    passes; else an ``ArgumentError`` naming ``where``."""
    kept: T = rule.check(where, value)
    return kept

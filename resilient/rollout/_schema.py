"""Validation before anything changes: a configuration's bytes become the user's own typed
model, then pass the semantic rules; any fault is a :class:`~resilient.errors.ConfigRejectedError`
naming the field and the rule.

- :class:`PydanticSchema` parses with pydantic v2 (``Model.model_validate_json``): the model is
  the user's own, and pydantic names each bad field and the rule it broke.
- A :data:`Validator` is any callable of the parsed config that returns the problems it finds
  (an empty iterable when there are none): :func:`rule` makes one from a predicate, and
  :func:`fleet_connection_budget` is the pool issue's fleet budget check as one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from resilient.errors import ArgumentTypeError, ConfigRejectedError

__all__ = [
    "ConfigSchema",
    "Problem",
    "PydanticSchema",
    "Validator",
    "check_schema",
    "fleet_connection_budget",
    "parse_and_validate",
    "rule",
]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)

_MAX_PROBLEMS = 20
"""Problems a rejection keeps: its size is bounded whatever the configuration holds."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault of a configuration: ``field`` is a dotted path (``""`` for the whole),
    ``rule`` a short name of what it broke, ``message`` says it to a person."""

    field: str
    rule: str
    message: str


class ConfigSchema(Protocol[C_co]):
    """Turns a configuration's bytes into the typed configuration, or raises
    :class:`~resilient.errors.ConfigRejectedError`."""

    def parse(self, data: bytes) -> C_co: ...


Validator = Callable[[Any], Iterable[Problem]]
"""A semantic rule: the problems it finds in a parsed configuration (none when it is fine)."""


class PydanticSchema(Generic[C]):
    """Parse with a pydantic v2 model (``model``): JSON bytes in, a model instance out.
    pydantic's errors become :class:`Problem` s: the field's location dotted, the error's
    type as the rule (``greater_than``, ``missing``, ``string_type``...)."""

    def __init__(self, model: type[C]) -> None:
        import pydantic  # the `rollout` extra; imported only by a user of this schema

        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise ArgumentTypeError(
                f"PydanticSchema.model must be a pydantic BaseModel class, got {model!r}"
            )
        self.model = model
        self._validation_error = pydantic.ValidationError

    def parse(self, data: bytes) -> C:
        try:
            return self.model.model_validate_json(data)  # type: ignore[attr-defined, no-any-return]
        except self._validation_error as error:
            problems = tuple(
                Problem(".".join(str(part) for part in item["loc"]), item["type"], item["msg"])
                for item in error.errors(include_url=False)[:_MAX_PROBLEMS]
            )
            raise ConfigRejectedError(_as_triples(problems)) from None


def _as_triples(problems: Sequence[Problem]) -> tuple[tuple[str, str, str], ...]:
    return tuple((p.field, p.rule, p.message) for p in problems[:_MAX_PROBLEMS])


def rule(field: str, name: str, message: str, holds: Callable[[Any], bool]) -> Validator:
    """A validator that finds one problem (``field``, ``name``, ``message``) when
    ``holds(config)`` is false."""

    def validate(config: Any) -> Iterable[Problem]:
        return () if holds(config) else (Problem(field, name, message),)

    validate.__name__ = f"rule_{name}"
    return validate


def fleet_connection_budget(
    measure: Callable[[Any], Any], *, field: str = "", rule_name: str = "fleet_connection_budget"
) -> Validator:
    """A validator from the pool issue's fleet budget check: ``measure(config)`` returns the
    :class:`~resilient.pool.FleetBudget` of the configuration (call
    :func:`~resilient.pool.fleet_budget` with its pool and gate settings); a budget that does
    not fit is a problem of ``field``, with by how much it can exceed the backend."""

    def validate(config: Any) -> Iterable[Problem]:
        budget = measure(config)
        problems = budget.problems()
        if not problems:
            return ()
        return (
            Problem(field, rule_name, "the fleet can exceed its backend: " + "; ".join(problems)),
        )

    return validate


def check_schema(where: str, schema: object, validators: Sequence[object]) -> None:
    """An :class:`~resilient.errors.ArgumentTypeError` naming ``where`` unless ``schema`` can
    parse and every validator is callable."""
    if not callable(getattr(schema, "parse", None)):
        raise ArgumentTypeError(f"{where}.schema must have a parse(data) method, got {schema!r}")
    if not all(callable(validator) for validator in validators):
        raise ArgumentTypeError(f"{where}.validators must be callables")


def parse_and_validate(schema: ConfigSchema[C], validators: Sequence[Validator], data: bytes) -> C:
    """The typed configuration of ``data``, or :class:`~resilient.errors.ConfigRejectedError`
    with every problem the schema or a validator found (a validator that raises is a problem
    of its own, named after it: a broken rule never passes a configuration)."""
    config = schema.parse(data)
    problems: list[Problem] = []
    for validator in validators:
        name = getattr(validator, "__name__", type(validator).__name__)
        try:
            problems.extend(validator(config))
        except Exception as error:  # a rule that cannot decide rejects
            problems.append(
                Problem("", name, f"the validator raised {type(error).__name__}: {error}")
            )
    if problems:
        raise ConfigRejectedError(_as_triples(problems))
    return config

"""The values a :class:`~resilient.release.ReleaseQueue` reads and answers with.

- :class:`ReleaseState`: the snapshot of the world ``state()`` returns at commit time;
- the verdicts a ``revalidate`` callback answers: :class:`Proceed`, :class:`Replan`,
  :class:`Drop`;
- how an action ended: :class:`Done`, :class:`Failed`, :class:`Superseded`, :class:`Dropped`
  (an :data:`Outcome`), and each failed run as an :class:`Attempt`;
- :class:`Brake`, where the health brake stands, and :class:`ReleaseStats`.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from resilient._validate import Instance, Integer, Number, Text, check, shown
from resilient.errors import ArgumentTypeError, ArgumentValueError

if TYPE_CHECKING:
    from resilient.release._ticket import Ticket

__all__ = [
    "Attempt",
    "Brake",
    "Done",
    "Drop",
    "Dropped",
    "Failed",
    "Outcome",
    "Proceed",
    "ReleaseState",
    "ReleaseStats",
    "Replan",
    "Superseded",
    "Verdict",
    "check_run",
]

T = TypeVar("T")

_VERSION = Integer()
_UNITS = Integer(min=0)
_SHARE = Number(min=0, max=1, unit="share")
_FLAG = Instance(bool, "a bool")
_REASON = Text(non_empty=True)


@dataclass(frozen=True, slots=True)
class ReleaseState:
    """What the world looks like now, as ``state()`` reads it at commit time.

    ``version`` increases whenever the world changes (an action computed from an older
    version is stale); ``capacity`` is the units in total (engines, nodes, ...);
    ``out_of_service`` the units out of service now, for any reason, including actions that
    have ended (the queue adds the ``takes_out`` of the actions it is running); ``unhealthy``
    the share (0 to 1) observed unhealthy. Checked when made: an ``ArgumentError`` names the
    field, and a ``state()`` that raises one counts as unavailable (nothing starts).
    """

    version: int
    capacity: int
    out_of_service: int = 0
    unhealthy: float = 0.0

    def __post_init__(self) -> None:
        version = check("ReleaseState.version", self.version, _VERSION)
        capacity = check("ReleaseState.capacity", self.capacity, _UNITS)
        out = check("ReleaseState.out_of_service", self.out_of_service, Integer(min=0))
        if out > capacity:
            raise ArgumentValueError(
                f"ReleaseState.out_of_service must be <= capacity ({capacity}), got {out!r}"
            )
        unhealthy = check("ReleaseState.unhealthy", self.unhealthy, _SHARE)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "out_of_service", out)
        object.__setattr__(self, "unhealthy", unhealthy)


def check_run(where: str, run: object) -> None:
    """Refuse (``ArgumentTypeError`` naming ``where``) a ``run`` that is not an async callable
    taking no argument: an ``async def`` function or method, a ``functools.partial`` of one,
    or an object whose ``__call__`` is ``async def``. A plain function (a lambda returning a
    coroutine included) is refused: the queue cannot tell it from a sync one that would run,
    blocking, at commit time."""
    if inspect.iscoroutinefunction(run):
        return
    target = run
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return
    call = getattr(type(target), "__call__", None)  # noqa: B004 (the method, not callability)
    if (
        not inspect.isroutine(target)
        and not inspect.isclass(target)
        and (inspect.iscoroutinefunction(call))
    ):
        return
    what = "callable but not async" if callable(run) else "not callable"
    raise ArgumentTypeError(
        f"{where} must be an async callable taking no argument (async def, or a "
        f"functools.partial of one), got {shown(run)} ({what})"
    )


# -- what a revalidate callback answers ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proceed:
    """Start the action as it is (if it is neither stale nor expired: those are only ever
    replanned or dropped)."""


@dataclass(frozen=True, slots=True)
class Replan:
    """Start ``run`` instead: a fresh action for the same key, based on the version the
    callback was shown. ``restores`` None keeps the old action's. Checked when made."""

    run: Callable[[], Awaitable[Any]]
    takes_out: int = 0
    restores: bool | None = None

    def __post_init__(self) -> None:
        check_run("Replan.run", self.run)
        takes_out = check("Replan.takes_out", self.takes_out, _UNITS)
        if self.restores is not None:
            check("Replan.restores", self.restores, _FLAG)
        if self.restores and takes_out:
            raise ArgumentValueError(
                f"Replan.takes_out must be 0 for an action that restores, got {takes_out!r}"
            )
        object.__setattr__(self, "takes_out", takes_out)


@dataclass(frozen=True, slots=True)
class Drop:
    """Never start the action; it ends as :class:`Dropped` with ``reason``."""

    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", check("Drop.reason", self.reason, _REASON))


Verdict: TypeAlias = Proceed | Replan | Drop
"""What a ``revalidate`` callback answers."""

# -- how an action ended -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed run of an action."""

    number: int
    """1 for the first run."""
    started: float
    """When it started, on the queue's clock."""
    ended: float
    error: BaseException
    retry_in: float | None
    """Seconds waited before the next run (None: there was none)."""


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """The action ran and returned ``result``."""

    result: T


@dataclass(frozen=True, slots=True)
class Failed:
    """The action's last run raised ``error`` and it will not run again: its attempts were
    exhausted, the queue closed before the retry, or ``close(cancel=True)`` cancelled it while
    it ran (``error`` is then the ``CancelledError``: it may have been partly applied).
    ``attempts`` is every failed run, with its times and the backoff that followed."""

    error: BaseException
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class Superseded:
    """A newer action for the same key took this one's place before it started (a later
    ``submit``, or a ``Replan`` answer); ``by`` is its ticket."""

    by: Ticket[Any]


@dataclass(frozen=True, slots=True)
class Dropped:
    """The action never ran (or never ran again), for ``reason``."""

    reason: str


Outcome: TypeAlias = Done[T] | Failed | Superseded | Dropped
"""How an action ended: exactly one of these, once."""


class Brake(enum.Enum):
    """Where the health brake stands (``ReleaseQueue.brake``)."""

    OFF = "off"
    """Health is fine: removals start at the full (ramped) rate."""
    SLOWED = "slowed"
    """Unhealthy share above ``slow_above``: removals start ``slow_factor`` times slower."""
    HALTED = "halted"
    """Unhealthy share above ``halt_above``: no removal starts; restores still go."""


@dataclass(slots=True)
class ReleaseStats:
    """Counters of one :class:`~resilient.release.ReleaseQueue` since it was made.

    Every ticket ends once: ``submitted + replanned == done + failed + superseded + dropped``
    plus the tickets still queued or running.
    """

    submitted: int = 0
    """Actions submitted."""
    replanned: int = 0
    """Fresh actions made by a ``Replan`` answer (each supersedes the one it replaces)."""
    started: int = 0
    """Runs started (a retried action counts once per run)."""
    done: int = 0
    failed: int = 0
    superseded: int = 0
    dropped: int = 0
    retries: int = 0
    """Failed runs that were retried."""
    pauses: int = 0
    """Times the queue paused (by ``pause`` or a followed breaker)."""
    halts: int = 0
    """Times the health brake halted the release."""

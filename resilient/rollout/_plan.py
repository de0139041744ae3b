"""A fleet's rollout plan: what the leading instance publishes through the store, and every
other instance follows (:meth:`~resilient.rollout.ConfigRollout.follow`).

A plan says which candidate is rolled out over which baseline, at which stage, in which state,
and which keys its canary holds (the percentage and the hash's salt, or the named cohorts): an
instance that reads it serves each key exactly as the leader does. A plan read from the store
is checked field by field; one that is not a plan is refused (the instance keeps serving what
it served, and counts a store error), never half applied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["Plan"]

_STATES = ("running", "paused", "completed", "rolled_back")


@dataclass(frozen=True, slots=True)
class Plan:
    candidate: int
    baseline: int
    stage: int
    state: str
    percent: float | None
    cohorts: tuple[str, ...]
    salt: str

    @property
    def stage_id(self) -> str:
        """The stage's name in the store (its samples are kept under it)."""
        return f"{self.candidate}:{self.stage}"

    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Plan:
        """The plan in ``data``; :class:`ValueError` naming the field when it is none."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a rollout plan must be a JSON object")

        def integer(name: str) -> int:
            value = raw.get(name)
            if type(value) is not int or value < 0:
                raise ValueError(f"rollout plan field {name!r} must be an int >= 0, got {value!r}")
            return value

        state = raw.get("state")
        if state not in _STATES:
            raise ValueError(f"rollout plan field 'state' must be one of {_STATES}, got {state!r}")
        percent = raw.get("percent")
        if percent is not None and (type(percent) not in (int, float) or not 0 <= percent <= 100):
            raise ValueError(f"rollout plan field 'percent' must be in [0, 100], got {percent!r}")
        cohorts = raw.get("cohorts")
        if not isinstance(cohorts, list) or not all(isinstance(c, str) for c in cohorts):
            raise ValueError(f"rollout plan field 'cohorts' must be a list of str, got {cohorts!r}")
        salt = raw.get("salt")
        if not isinstance(salt, str) or len(salt) > 64:
            raise ValueError("rollout plan field 'salt' must be a str of at most 64 characters")
        return cls(
            integer("candidate"),
            integer("baseline"),
            integer("stage"),
            state,
            None if percent is None else float(percent),
            tuple(cohorts),
            salt,
        )

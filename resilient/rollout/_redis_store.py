"""A config store in Redis, shared by a fleet.

Keys, under ``resilient:config:<name>``::

    :next          the last version number given (INCR)
    :v:<N>         version N's exact bytes (SET NX: never overwritten)
    :current       the current version number
    :good          the last known good version number
    :log           the log, one JSON object per entry (the last DEFAULT_LOG_ENTRIES)
    :plan          the fleet's rollout plan (a JSON document)
    :stage:<S>     a hash of stage S's counts; :stage:<S>:<side>:<metric> its latest values
                   (both expire a day after the last sample)

Activating is one Lua call that compares the current version with the expected one, moves it,
logs, and publishes the new number on channel ``resilient:config:<name>:changes``: of two
writers that read the same current version, exactly one wins. ``changes()`` listens on that
channel and also reads ``:current`` every ``poll_interval`` seconds, so an instance that missed
a message (a reconnect drops what was published meanwhile) still sees the change within that
time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from resilient._validate import Integer, Number, Text, check
from resilient.errors import ArgumentTypeError, ArgumentValueError, ConfigConflictError
from resilient.rollout._gates import CohortSamples
from resilient.rollout._store import (
    DEFAULT_LOG_ENTRIES,
    ConfigVersion,
    LogEntry,
    check_config_bytes,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisConfigStore"]

_VERSION = Integer(min=1)

_ACTIVATE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 'missing' end
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[2] then return 'conflict:' .. current end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
redis.call('PUBLISH', ARGV[5], ARGV[1])
return 'ok'
"""


class RedisConfigStore:
    """A :class:`~resilient.rollout.ConfigStore` named ``name`` in the Redis of ``client`` (a
    ``redis.asyncio.Redis``, used as given: its timeouts and retries are the caller's)."""

    def __init__(self, client: Redis, name: str, *, poll_interval: float = 0.25) -> None:
        if not hasattr(client, "execute_command"):
            raise ArgumentTypeError(
                "RedisConfigStore.client must be a redis.asyncio.Redis, "
                f"got {type(client).__name__}"
            )
        pool = getattr(client, "connection_pool", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise ArgumentValueError(
                "RedisConfigStore.client must not decode responses (decode_responses=True): a "
                "configuration's bytes are kept exactly, and may be no text"
            )
        check("RedisConfigStore.name", name, Text(non_empty=True))
        self.poll_interval: float = check(
            "RedisConfigStore.poll_interval",
            poll_interval,
            Number(min=0, min_open=True, unit="seconds"),
        )
        self._client = client
        self._prefix = f"resilient:config:{name}"
        self.channel = f"{self._prefix}:changes"
        self._activate_script: Any = client.register_script(_ACTIVATE)

    def _key(self, suffix: str) -> str:
        return f"{self._prefix}:{suffix}"

    async def _log_entry(self, entry: LogEntry) -> None:
        line = json.dumps(entry.as_dict(), ensure_ascii=True)
        pipe = self._client.pipeline(transaction=True)
        pipe.rpush(self._key("log"), line)
        pipe.ltrim(self._key("log"), -DEFAULT_LOG_ENTRIES, -1)
        await pipe.execute()

    async def store(self, data: bytes, reason: str) -> ConfigVersion:
        data = check_config_bytes("RedisConfigStore.store(data)", data)
        number = int(await self._client.incr(self._key("next")))
        while not await self._client.set(self._key(f"v:{number}"), data, nx=True):
            # version `number` is kept already (`:next` lost, e.g. in a restore): never
            # overwritten, and never answered for other bytes; the next number is tried
            number = int(await self._client.incr(self._key("next")))
        await self._log_entry(LogEntry.of("stored", number, reason))
        return ConfigVersion(number, data)

    async def get(self, number: int) -> ConfigVersion:
        check("RedisConfigStore.get(number)", number, _VERSION)
        data = await self._client.get(self._key(f"v:{number}"))
        if data is None:
            raise KeyError(number)
        return ConfigVersion(number, data if isinstance(data, bytes) else data.encode())

    async def _pointed(self, suffix: str) -> ConfigVersion | None:
        raw = await self._client.get(self._key(suffix))
        return None if raw is None else await self.get(int(raw))

    async def current(self) -> ConfigVersion | None:
        return await self._pointed("current")

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        check("RedisConfigStore.activate(number)", number, _VERSION)
        entry = json.dumps(LogEntry.of("activated", number, reason).as_dict(), ensure_ascii=True)
        outcome = await self._activate_script(
            keys=[self._key("current"), self._key(f"v:{number}"), self._key("log")],
            args=[
                number,
                "" if expected is None else expected,
                entry,
                DEFAULT_LOG_ENTRIES,
                self.channel,
            ],
        )
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if outcome == "missing":
            raise KeyError(number)
        if outcome != "ok":
            current = outcome.removeprefix("conflict:") or None
            raise ConfigConflictError(
                f"version {number} not activated: the current version is {current}, not {expected}"
            )

    async def last_good(self) -> ConfigVersion | None:
        return await self._pointed("good")

    async def mark_good(self, number: int, reason: str) -> None:
        await self.get(number)
        await self._client.set(self._key("good"), number)
        await self._log_entry(LogEntry.of("marked_good", number, reason))

    async def record(self, action: str, version: int | None, reason: str) -> None:
        await self._log_entry(LogEntry.of(action, version, reason))

    async def log(self) -> list[LogEntry]:
        entries = []
        for line in await self._client.lrange(self._key("log"), 0, -1):
            try:
                entries.append(LogEntry.from_dict(json.loads(line)))
            except ValueError:
                continue
        return entries

    async def _current_number(self) -> int | None:
        raw = await self._client.get(self._key("current"))
        return None if raw is None else int(raw)

    async def changes(self) -> AsyncIterator[int]:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self.channel)
        try:
            seen = await self._current_number()
            while True:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll_interval)
                now = await self._current_number()
                if now is not None and now != seen:
                    seen = now
                    yield now
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish_plan(self, plan: bytes) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key("plan"), plan)
        pipe.publish(self.channel, "plan")
        await pipe.execute()

    async def plan(self) -> bytes | None:
        raw = await self._client.get(self._key("plan"))
        return None if raw is None else (raw if isinstance(raw, bytes) else raw.encode())

    async def add_samples(
        self, stage: str, canary: CohortSamples, control: CohortSamples, capacity: int
    ) -> None:
        counts = self._key(f"stage:{stage}")
        pipe = self._client.pipeline(transaction=False)
        for side, samples in (("canary", canary), ("control", control)):
            pipe.hincrby(counts, f"{side}_total", samples.total)
            pipe.hincrby(counts, f"{side}_ok", samples.successes)
            for metric, values in samples.metrics.items():
                if values:
                    key = self._key(f"stage:{stage}:{side}:{metric}")
                    pipe.rpush(key, *(repr(value) for value in values))
                    pipe.ltrim(key, -capacity, -1)
                    pipe.expire(key, _SAMPLES_TTL)
        pipe.expire(counts, _SAMPLES_TTL)
        await pipe.execute()

    async def samples(
        self, stage: str, metrics: tuple[str, ...], capacity: int
    ) -> tuple[CohortSamples, CohortSamples]:
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._key(f"stage:{stage}"))
        for side in ("canary", "control"):
            for metric in metrics:
                pipe.lrange(self._key(f"stage:{stage}:{side}:{metric}"), -capacity, -1)
        replies = await pipe.execute()
        counts = {_text(k): int(v) for k, v in replies[0].items()}
        sides = []
        lists = iter(replies[1:])
        for side in ("canary", "control"):
            samples = CohortSamples(
                capacity, counts.get(f"{side}_ok", 0), counts.get(f"{side}_total", 0)
            )
            for metric in metrics:
                samples.values(metric).extend(float(value) for value in next(lists))
            sides.append(samples)
        return sides[0], sides[1]


_SAMPLES_TTL = 86_400
"""Seconds a stage's samples outlive its last one."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

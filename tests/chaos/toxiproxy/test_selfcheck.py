"""``python -m chaos.toxiproxy.selfcheck``: its checks, their verdicts and what it prints.

The real run relays through a real embedded server; the verdicts at the edges of the latency
window are pinned with scripted round trips, so no test depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
import time
from typing import ClassVar

import pytest

from chaos.toxiproxy import selfcheck
from chaos.toxiproxy._proxy import Proxy
from chaos.toxiproxy.selfcheck import Check, run_selfcheck
from chaos.toxiproxy.server import ToxiproxyServer

pytestmark = pytest.mark.real_server

_NAMES = ["server started", "bytes relayed intact", "latency toxic added", "latency applied"]


def _added(check: Check) -> float:
    match = re.fullmatch(r"added (-?\d+\.\d) ms \(want 100\.\.130\)", check.detail)
    assert match is not None, check.detail
    return float(match.group(1))


async def test_the_checks_pass_on_a_working_server_and_say_what_they_measured() -> None:
    checks = await run_selfcheck()
    assert [check.name for check in checks] == _NAMES
    started, relayed, added, applied = checks
    assert started.passed
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", started.detail)
    assert relayed.passed
    plain = re.fullmatch(r"16384 bytes, (\d+\.\d) ms", relayed.detail)
    assert plain is not None, relayed.detail
    assert 0 <= float(plain.group(1)) < 2000  # 16 KiB over loopback
    assert (added.passed, added.detail) == (True, "200")
    delay = _added(applied)
    # A busy machine may push the delay past the window: the verdict must then say so.
    assert applied.passed == (99 <= delay <= 130)
    assert 99 <= delay < 5000  # the toxic's 100 ms (less the plain round trip's own time)


class _Trips:
    """Scripted ``_round_trip`` results, in order."""

    def __init__(self, *results: tuple[bool, float]) -> None:
        self.results = list(results)
        self.ports: list[int] = []

    async def __call__(self, port: int) -> tuple[bool, float]:
        self.ports.append(port)
        return self.results.pop(0)


@pytest.mark.parametrize(
    ("toxic_ms", "passed"),
    [(108.9, False), (109.0, True), (140.0, True), (140.1, False)],
)
async def test_the_latency_window_is_100_to_130_ms_added(
    monkeypatch: pytest.MonkeyPatch, toxic_ms: float, passed: bool
) -> None:
    trips = _Trips((True, 10.0), (True, toxic_ms))
    monkeypatch.setattr(selfcheck, "_round_trip", trips)
    checks = await run_selfcheck()
    assert [check.name for check in checks] == _NAMES
    assert checks[1] == Check("bytes relayed intact", True, "16384 bytes, 10.0 ms")
    assert checks[3] == Check(
        "latency applied", passed, f"added {toxic_ms - 10.0:.1f} ms (want 100..130)"
    )
    assert len(set(trips.ports)) == 1
    assert trips.ports[0] > 0


@pytest.mark.parametrize(("plain_ok", "toxic_ok"), [(False, True), (True, False)])
async def test_bytes_that_come_back_changed_fail_their_check(
    monkeypatch: pytest.MonkeyPatch, plain_ok: bool, toxic_ok: bool
) -> None:
    monkeypatch.setattr(selfcheck, "_round_trip", _Trips((plain_ok, 1.0), (toxic_ok, 111.0)))
    checks = await run_selfcheck()
    assert (checks[1].passed, checks[3].passed) == (plain_ok, toxic_ok)


class _Taken(ToxiproxyServer):
    """A server on which the proxy the self-check creates already exists."""

    async def start(self) -> None:
        await super().start()
        body = b'{"name": "selfcheck", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}'
        await self.collection.create(body)


async def test_a_proxy_that_cannot_be_created_is_one_failed_check_naming_the_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(selfcheck, "ToxiproxyServer", _Taken)
    checks = await run_selfcheck()
    assert [(check.name, check.passed) for check in checks] == [
        ("server started", True),
        ("unexpected error", False),
    ]
    assert checks[1].detail == repr(
        RuntimeError('create proxy: HTTP 409: {"error":"proxy already exists","status":409}\n')
    )


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> list[Check]:
    checks: list[Check] = []

    async def run() -> list[Check]:
        return checks

    monkeypatch.setattr(selfcheck, "run_selfcheck", run)
    return checks


def test_main_prints_a_line_per_check_and_fails_if_any_failed(
    canned: list[Check], capsys: pytest.CaptureFixture[str]
) -> None:
    canned += [Check("one", True, "fine"), Check("two", False, "broken")]
    assert selfcheck.main() == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["  ok   one: fine", "  FAIL two: broken"]
    assert re.fullmatch(r"toxiproxy selfcheck: FAIL \(\d+\.\d s\)", lines[2]), lines
    assert len(lines) == 3


def test_main_passes_when_every_check_passed(
    canned: list[Check], capsys: pytest.CaptureFixture[str]
) -> None:
    canned += [Check("one", True, "fine")]
    assert selfcheck.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  ok   one: fine"
    assert re.fullmatch(r"toxiproxy selfcheck: PASS \(0\.\d s\)", lines[1]), lines


def test_the_module_runs_as_a_command_and_exits_with_its_verdict() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos.toxiproxy.selfcheck"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = completed.stdout.splitlines()
    assert [line[7:].split(":")[0] for line in lines[:-1]] == _NAMES, completed.stdout
    verdict = re.fullmatch(r"toxiproxy selfcheck: (PASS|FAIL) \(\d+\.\d s\)", lines[-1])
    assert verdict is not None, completed.stdout
    assert completed.returncode == (0 if verdict.group(1) == "PASS" else 1)
    assert all(line.startswith("  ok   ") for line in lines[:3]), completed.stdout


def test_a_check_is_a_frozen_value() -> None:
    check = Check("name", True, "detail")
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.passed = False  # type: ignore[misc]


class _Recording(ToxiproxyServer):
    """A server that records the bodies of the proxies created on it."""

    bodies: ClassVar[list[object]] = []

    async def start(self) -> None:
        await super().start()
        create = self.collection.create

        async def recorded(body: bytes) -> Proxy:
            _Recording.bodies.append(json.loads(body))
            return await create(body)

        self.collection.create = recorded  # type: ignore[method-assign]


async def test_the_proxy_is_created_on_loopback_in_front_of_the_echo_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trips = _Trips((True, 10.0), (True, 115.0))
    monkeypatch.setattr(selfcheck, "_round_trip", trips)
    monkeypatch.setattr(selfcheck, "ToxiproxyServer", _Recording)
    _Recording.bodies.clear()
    checks = await run_selfcheck()
    assert all(check.passed for check in checks), checks
    (body,) = _Recording.bodies
    assert isinstance(body, dict)
    assert body == {"name": "selfcheck", "listen": "127.0.0.1:0", "upstream": body["upstream"]}
    assert re.fullmatch(r"127\.0\.0\.1:\d+", body["upstream"])


async def test_two_self_checks_at_once_each_have_their_own_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results: dict[int, list[tuple[bool, float]]] = {}

    async def trip(port: int) -> tuple[bool, float]:
        results.setdefault(port, [(True, 10.0), (True, 115.0)])
        return results[port].pop(0)

    monkeypatch.setattr(selfcheck, "_round_trip", trip)
    first, second = await asyncio.gather(run_selfcheck(), run_selfcheck())
    assert [check.name for check in first] == _NAMES
    assert [check.name for check in second] == _NAMES
    assert all(check.passed for check in first + second)
    assert len(results) == 2


async def test_a_round_trip_is_timed_from_the_write_to_the_last_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(len(selfcheck._PAYLOAD)))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    try:
        assert await selfcheck._round_trip(server.sockets[0].getsockname()[1]) == (True, 250.0)
    finally:
        server.close()
        await server.wait_closed()

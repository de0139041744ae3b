"""Each toxic's stage, exactly: in virtual time, with scripted draws, no sockets.

``FakeHost`` is the link a stage runs on: its clock moves only when a stage sleeps, every sleep
and timer is recorded, and a test can make the Nth sleep end early (a toxic change) after
changing the toxic. So these tests pin what the socket tests can only bound: the exact waits,
the exact pieces and their order, when a stage closes or resets the connection, and the slicer's
cuts, which are compared with an independent rendering of Toxiproxy's algorithm.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from chaos.toxiproxy._gojson import MISSING, BadBody
from chaos.toxiproxy._toxics import (
    TOXIC_TYPES,
    Chunk,
    InvalidAttribute,
    Stage,
    Toxic,
    make_stage,
    parse_attributes,
    validate_attributes,
)


class ScriptedRandom(random.Random):
    """A seeded generator whose ``random()`` returns scripted values first; counts the calls."""

    def __init__(self, seed: int = 0, draws: tuple[float, ...] = ()) -> None:
        super().__init__(seed)
        self.script = list(draws)
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.script.pop(0) if self.script else super().random()


@dataclass
class FakeTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeHost:
    """A link in virtual time: records sleeps, timers, closes and resets."""

    rng: random.Random = field(default_factory=ScriptedRandom)
    clock: float = 100.0
    oversleep: float = 0.0
    sleeps: list[Any] = field(default_factory=list)  # seconds, or None: for ever
    timers: list[FakeTimer] = field(default_factory=list)
    interrupts: dict[int, Callable[[], float]] = field(default_factory=dict)
    """Sleep number -> a change made during it; returns the seconds slept before the change."""
    closed: int = 0
    reset: int = 0

    def now(self) -> float:
        return self.clock

    async def sleep(self, seconds: float | None) -> bool:
        self.sleeps.append(seconds)
        change = self.interrupts.pop(len(self.sleeps), None)
        if change is not None:
            self.clock += change()
            return True
        assert seconds is not None, "a stage would wait for ever"
        self.clock += seconds + self.oversleep
        return False

    def call_later(self, seconds: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(seconds, callback)
        self.timers.append(timer)
        return timer

    def close_connection(self) -> None:
        self.closed += 1

    def reset_connection(self) -> None:
        self.reset += 1

    def live_timers(self) -> list[float]:
        return [timer.delay for timer in self.timers if not timer.cancelled]


def _toxic(toxic_type: str, toxicity: float = 1.0, **attributes: int) -> Toxic:
    merged = parse_attributes(toxic_type, MISSING, attributes)
    return Toxic(
        name="t",
        type=toxic_type,
        stream="downstream",
        upstream=False,
        toxicity=toxicity,
        attributes=merged,
    )


def _stage(toxic: Toxic, host: FakeHost) -> Stage:
    stage = make_stage(toxic, host)  # type: ignore[arg-type]
    stage.start()
    return stage


@dataclass
class Sink:
    """Collects what a stage emits, with the virtual time of each emission."""

    host: FakeHost
    chunks: list[Chunk] = field(default_factory=list)
    times: list[Any] = field(default_factory=list)

    async def __call__(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.times.append(self.host.clock)

    @property
    def data(self) -> list[bytes | None]:
        return [data for _read_time, data in self.chunks]


def _run(stage: Stage, host: FakeHost, *chunks: Chunk) -> Sink:
    import asyncio

    sink = Sink(host)

    async def run() -> None:
        for chunk in chunks:
            await stage.process(chunk, sink)

    asyncio.run(run())
    return sink


PAYLOAD = bytes(range(256)) * 4


# -- attributes ------------------------------------------------------------------------------

_GO_FIELDS = {
    "latency": ("LatencyToxic", {"latency": "int64", "jitter": "int64"}),
    "bandwidth": ("BandwidthToxic", {"rate": "int64"}),
    "slow_close": ("SlowCloseToxic", {"delay": "int64"}),
    "timeout": ("TimeoutToxic", {"timeout": "int64"}),
    "reset_peer": ("ResetToxic", {"timeout": "int64"}),
    "slicer": ("SlicerToxic", {"average_size": "int", "size_variation": "int", "delay": "int"}),
    "limit_data": ("LimitDataToxic", {"bytes": "int64"}),
    "noop": ("NoopToxic", {}),
}


def test_every_type_has_toxiproxys_go_struct_and_fields() -> None:
    assert {name: (struct, dict(fields)) for name, (struct, fields) in TOXIC_TYPES.items()} == (
        _GO_FIELDS
    )


@pytest.mark.parametrize(
    ("toxic_type", "attribute", "go_type", "struct"),
    [
        (toxic_type, attribute, go_type, struct)
        for toxic_type, (struct, fields) in _GO_FIELDS.items()
        for attribute, go_type in fields.items()
    ],
)
def test_a_mistyped_attribute_names_the_go_field(
    toxic_type: str, attribute: str, go_type: str, struct: str
) -> None:
    with pytest.raises(BadBody) as caught:
        parse_attributes(toxic_type, {attribute: "x"}, {})
    assert str(caught.value) == (
        f"json: cannot unmarshal string into Go struct field {struct}.attributes.{attribute} "
        f"of type {go_type}"
    )


def test_attributes_that_are_not_an_object_are_gos_type_error() -> None:
    with pytest.raises(BadBody) as caught:
        parse_attributes("latency", [1], {})
    assert str(caught.value) == (
        "json: cannot unmarshal array into Go struct field .attributes of type toxics.LatencyToxic"
    )


def test_attributes_merge_over_the_current_ones_and_default_to_zero() -> None:
    assert parse_attributes("latency", MISSING, {}) == {"latency": 0, "jitter": 0}
    assert parse_attributes("latency", {"jitter": 5}, {"latency": 100, "jitter": 1}) == {
        "latency": 100,
        "jitter": 5,
    }
    assert parse_attributes("latency", {"latency": None, "other": 1}, {"latency": 7}) == {
        "latency": 7,
        "jitter": 0,
    }
    assert parse_attributes("noop", {"anything": 1}, {}) == {}


@pytest.mark.parametrize(
    ("toxic_type", "attributes"),
    [
        ("latency", {"latency": 0, "jitter": 0}),
        ("bandwidth", {"rate": 0}),
        ("slow_close", {"delay": 0}),
        ("timeout", {"timeout": 0}),
        ("reset_peer", {"timeout": 0}),
        ("limit_data", {"bytes": 0}),
        ("slicer", {"average_size": 1, "size_variation": 0, "delay": 0}),
        ("slicer", {"average_size": 1, "size_variation": 1, "delay": 0}),
        ("slicer", {"average_size": 5, "size_variation": 5, "delay": 2**62}),
        ("latency", {"latency": 2**63 - 1, "jitter": 2**63 - 1}),
    ],
)
def test_the_smallest_and_largest_safe_values_are_accepted(
    toxic_type: str, attributes: dict[str, int]
) -> None:
    validate_attributes(toxic_type, attributes)


@pytest.mark.parametrize(
    ("toxic_type", "attributes", "message"),
    [
        (
            "latency",
            {"latency": -1, "jitter": 0},
            "invalid attribute latency: must be >= 0, got -1",
        ),
        ("latency", {"latency": 0, "jitter": -1}, "invalid attribute jitter: must be >= 0, got -1"),
        ("bandwidth", {"rate": -1}, "invalid attribute rate: must be >= 0, got -1"),
        (
            "slicer",
            {"average_size": 0, "size_variation": 0, "delay": 0},
            "invalid attribute average_size: must be >= 1, got 0",
        ),
        (
            "slicer",
            {"average_size": 3, "size_variation": 4, "delay": 0},
            "invalid attribute size_variation: must be <= average_size (3), got 4",
        ),
        (
            "slicer",
            {"average_size": 3, "size_variation": -1, "delay": 0},
            "invalid attribute size_variation: must be >= 0, got -1",
        ),
    ],
)
def test_values_that_crash_toxiproxy_are_refused_by_name(
    toxic_type: str, attributes: dict[str, int], message: str
) -> None:
    with pytest.raises(InvalidAttribute) as caught:
        validate_attributes(toxic_type, attributes)
    assert str(caught.value) == message


def test_to_json_is_toxiproxys_shape() -> None:
    toxic = _toxic("latency", toxicity=0.5, latency=3)
    assert toxic.to_json() == {
        "attributes": {"latency": 3, "jitter": 0},
        "name": "t",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.5,
    }
    assert toxic.to_json()["attributes"] is not toxic.attributes  # a copy


# -- toxicity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toxicity", "draw", "applies"),
    [
        (0.0, 0.0, False),
        (0.5, 0.49, True),
        (0.5, 0.5, False),
        (1.0, 0.999999, True),
        (2.0, 0.999999, True),
        (-1.0, 0.0, False),
    ],
)
def test_toxicity_is_one_draw_per_start(toxicity: float, draw: float, applies: bool) -> None:
    rng = ScriptedRandom(draws=(draw,))
    stage = _stage(_toxic("noop", toxicity=toxicity), FakeHost(rng=rng))
    assert (stage.applies, stage.active(), rng.calls) == (applies, applies, 1)


@pytest.mark.parametrize("toxic_type", sorted(TOXIC_TYPES))
def test_a_stage_not_yet_started_does_not_apply(toxic_type: str) -> None:
    attributes = {"average_size": 1} if toxic_type == "slicer" else {}
    stage = make_stage(_toxic(toxic_type, **attributes), FakeHost())  # type: ignore[arg-type]
    assert (stage.applies, stage.removed, stage.active()) == (False, False, False)


def test_a_removed_stage_is_inactive_and_a_closed_one_is_not_removed() -> None:
    stage = _stage(_toxic("noop"), FakeHost())
    stage.stop(removed=False)
    assert (stage.removed, stage.active()) == (False, True)
    stage.stop(removed=True)
    assert (stage.removed, stage.active()) == (True, False)


async def test_noop_passes_everything_through() -> None:
    host = FakeHost()
    sink = Sink(host)
    stage = _stage(_toxic("noop"), host)
    await stage.process((1.0, b"abc"), sink)
    await stage.process((1.0, None), sink)
    assert (sink.chunks, host.sleeps) == ([(1.0, b"abc"), (1.0, None)], [])


# -- latency -----------------------------------------------------------------------------------


def test_latency_waits_from_the_read_time_so_a_burst_is_pipelined() -> None:
    host = FakeHost()
    stage = _stage(_toxic("latency", latency=50), host)
    read = host.clock - 0.030  # read 30 ms ago: 20 ms left
    sink = _run(stage, host, (read, b"a"), (read, b"b"))
    assert host.sleeps == [pytest.approx(0.020)]  # the second is already due
    assert sink.data == [b"a", b"b"]
    assert sink.chunks[0][0] == read  # the read time travels with the chunk


def test_latency_due_to_the_instant_does_not_wait() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("latency", latency=500), host), host, (host.clock - 0.5, b"x"))
    assert (host.sleeps, sink.data) == ([], [b"x"])  # 99.5 + 0.5 - 100.0 is exactly 0


def test_latency_does_not_wait_for_the_end_of_stream_or_when_it_does_not_apply() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("latency", latency=50), host), host, (host.clock, None))
    assert (host.sleeps, sink.data) == ([], [None])
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("latency", toxicity=0.5, latency=50), host)
    assert (_run(stage, host, (host.clock, b"x")).data, host.sleeps) == ([b"x"], [])


@pytest.mark.parametrize(("draw", "delay"), [(0.0, 0.060), (0.5, 0.100), (0.75, 0.120)])
def test_jitter_is_uniform_in_latency_plus_or_minus_jitter(draw: float, delay: float) -> None:
    rng = ScriptedRandom(draws=(0.0, draw))  # the toxicity draw, then the jitter draw
    host = FakeHost(rng=rng)
    _run(_stage(_toxic("latency", latency=100, jitter=40), host), host, (host.clock, b"x"))
    assert host.sleeps == [pytest.approx(delay)]
    assert rng.calls == 2


def test_a_jitter_of_one_millisecond_applies() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.0, 0.0)))
    _run(_stage(_toxic("latency", latency=10, jitter=1), host), host, (host.clock, b"x"))
    assert host.sleeps == [pytest.approx(0.009)]


def test_no_jitter_draws_nothing_and_a_negative_delay_waits_nothing() -> None:
    rng = ScriptedRandom(draws=(0.0,))
    host = FakeHost(rng=rng)
    _run(_stage(_toxic("latency", latency=10), host), host, (host.clock, b"x"))
    assert (host.sleeps, rng.calls) == ([pytest.approx(0.010)], 1)
    rng = ScriptedRandom(draws=(0.0, 0.0))
    host = FakeHost(rng=rng)
    _run(_stage(_toxic("latency", latency=10, jitter=50), host), host, (host.clock, b"x"))
    assert host.sleeps == []  # 10 - 50 ms: due already


def test_an_interrupted_latency_wait_forwards_the_chunk_at_once() -> None:
    host = FakeHost(interrupts={1: lambda: 0.001})
    sink = _run(_stage(_toxic("latency", latency=10**12), host), host, (host.clock, b"x"))
    assert sink.data == [b"x"]
    assert host.clock == pytest.approx(100.001)


# -- bandwidth ---------------------------------------------------------------------------------


def test_bandwidth_sends_a_large_chunk_in_rate_times_100_byte_pieces_every_100_ms() -> None:
    host = FakeHost()
    stage = _stage(_toxic("bandwidth", rate=1), host)  # 1000 B/s: 100-byte pieces
    sink = _run(stage, host, (host.clock, PAYLOAD[:250]))
    assert sink.data == [PAYLOAD[:100], PAYLOAD[100:200], PAYLOAD[200:250]]
    assert host.sleeps == [0.1, 0.1, pytest.approx(0.05)]
    assert b"".join(data for data in sink.data if data) == PAYLOAD[:250]


def test_bandwidth_splits_an_exact_multiple_without_an_empty_piece() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("bandwidth", rate=2), host), host, (host.clock, PAYLOAD[:400]))
    assert sink.data == [PAYLOAD[:200], PAYLOAD[200:400]]
    assert host.sleeps == [0.1, pytest.approx(0.1)]


def test_bandwidth_throttles_small_chunks_by_their_size() -> None:
    host = FakeHost()
    stage = _stage(_toxic("bandwidth", rate=10), host)  # 10 000 B/s
    sink = _run(stage, host, *[(host.clock, PAYLOAD[i : i + 500]) for i in range(0, 1000, 500)])
    assert host.sleeps == [pytest.approx(0.05), pytest.approx(0.05)]
    assert sink.data == [PAYLOAD[:500], PAYLOAD[500:1000]]
    assert sink.times == [pytest.approx(100.05), pytest.approx(100.1)]


def test_bandwidth_counts_an_oversleep_against_the_next_chunk_only() -> None:
    host = FakeHost(oversleep=0.03)
    stage = _stage(_toxic("bandwidth", rate=10), host)
    _run(stage, host, (host.clock, PAYLOAD[:500]), (host.clock, PAYLOAD[:500]))
    assert host.sleeps == [pytest.approx(0.05), pytest.approx(0.02)]  # 30 ms early credit
    host = FakeHost(oversleep=0.08)
    stage = _stage(_toxic("bandwidth", rate=10), host)
    _run(stage, host, *[(host.clock, PAYLOAD[:500])] * 3)
    assert host.sleeps == [pytest.approx(0.05), pytest.approx(0.05)]  # credit never banks


def test_bandwidth_that_owes_exactly_nothing_does_not_wait() -> None:
    host = FakeHost(oversleep=0.0625)  # binary fractions: the debt comes to exactly 0
    stage = _stage(_toxic("bandwidth", rate=8), host)  # 8000 B/s: 500 bytes take 62.5 ms
    sink = _run(stage, host, (host.clock, PAYLOAD[:500]), (host.clock, PAYLOAD[:500]))
    assert host.sleeps == [0.0625]
    assert sink.data == [PAYLOAD[:500], PAYLOAD[:500]]


def test_bandwidth_starts_each_connection_without_debt() -> None:
    host = FakeHost()
    stage = _stage(_toxic("bandwidth", rate=10), host)
    _run(stage, host, (host.clock, PAYLOAD[:500]))
    stage._debt = 5.0  # type: ignore[attr-defined]
    stage.start()
    _run(stage, host, (host.clock, PAYLOAD[:100]))
    assert host.sleeps[-1] == pytest.approx(0.01)


def test_bandwidth_zero_holds_until_a_change_then_forwards() -> None:
    host = FakeHost(interrupts={1: lambda: 5.0})
    sink = _run(_stage(_toxic("bandwidth", rate=0), host), host, (host.clock, b"held"))
    assert (host.sleeps, sink.data) == ([None], [b"held"])


def test_an_interrupted_bandwidth_piece_loop_forwards_the_rest_in_one_piece() -> None:
    host = FakeHost(interrupts={2: lambda: 0.01})
    sink = _run(_stage(_toxic("bandwidth", rate=1), host), host, (host.clock, PAYLOAD[:450]))
    assert sink.data == [PAYLOAD[:100], PAYLOAD[100:450]]


def test_bandwidth_passes_the_end_of_stream_and_inactive_data_at_once() -> None:
    host = FakeHost()
    assert _run(_stage(_toxic("bandwidth", rate=1), host), host, (1.0, None)).data == [None]
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("bandwidth", toxicity=0.5, rate=1), host)
    assert _run(stage, host, (1.0, PAYLOAD)).data == [PAYLOAD]
    assert host.sleeps == []


# -- slow_close --------------------------------------------------------------------------------


def test_slow_close_delays_only_the_end_of_stream() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("slow_close", delay=250), host), host, (1.0, b"x"), (1.0, None))
    assert (sink.data, host.sleeps) == ([b"x", None], [pytest.approx(0.25)])
    assert sink.times == [100.0, pytest.approx(100.25)]


def test_slow_close_that_does_not_apply_closes_at_once() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("slow_close", toxicity=0.5, delay=250), host)
    assert (_run(stage, host, (1.0, None)).data, host.sleeps) == ([None], [])


# -- timeout -----------------------------------------------------------------------------------


def test_timeout_arms_on_start_and_closes_when_it_fires() -> None:
    host = FakeHost()
    _stage(_toxic("timeout", timeout=150), host)
    assert host.live_timers() == [pytest.approx(0.15)]
    assert host.closed == 0
    host.timers[0].callback()
    assert host.closed == 1


def test_timeout_of_one_millisecond_arms() -> None:
    host = FakeHost()
    _stage(_toxic("timeout", timeout=1), host)
    assert host.live_timers() == [pytest.approx(0.001)]


def test_timeout_zero_arms_nothing_and_drops_data() -> None:
    host = FakeHost()
    stage = _stage(_toxic("timeout", timeout=0), host)
    sink = _run(stage, host, (1.0, b"dropped"))
    assert (host.timers, sink.data, host.closed) == ([], [], 0)


def test_every_chunk_restarts_the_timeout_and_is_dropped() -> None:
    host = FakeHost()
    stage = _stage(_toxic("timeout", timeout=100), host)
    sink = _run(stage, host, (1.0, b"a"), (1.0, b"b"))
    assert sink.data == []
    assert [timer.cancelled for timer in host.timers] == [True, True, False]
    assert host.live_timers() == [pytest.approx(0.1)]


def test_timeout_closes_at_the_end_of_stream_without_forwarding_it() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("timeout", timeout=100), host), host, (1.0, None))
    assert (sink.data, host.closed, len(host.timers)) == ([], 1, 1)  # closed, not re-armed


def test_a_timeout_that_does_not_apply_passes_the_end_of_stream_without_closing() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("timeout", toxicity=0.5, timeout=100), host)
    assert (_run(stage, host, (1.0, None)).data, host.closed, host.timers) == ([None], 0, [])


def test_removing_a_timeout_that_applied_closes_and_one_that_did_not_does_not() -> None:
    host = FakeHost()
    stage = _stage(_toxic("timeout", timeout=100), host)
    stage.stop(removed=True)
    assert (host.closed, host.live_timers(), stage.removed, stage.active()) == (1, [], True, False)
    host = FakeHost()
    stage = _stage(_toxic("timeout", timeout=100), host)
    stage.stop(removed=False)  # the connection closed: nothing more to close
    assert (host.closed, host.live_timers()) == (0, [])
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("timeout", toxicity=0.5, timeout=100), host)
    assert host.timers == []
    sink = _run(stage, host, (1.0, b"passes"))
    stage.stop(removed=True)
    assert (host.closed, sink.data) == (0, [b"passes"])


def test_restarting_a_timeout_rearms_it_with_the_new_value() -> None:
    host = FakeHost()
    toxic = _toxic("timeout", timeout=10**12)
    stage = _stage(toxic, host)
    toxic.attributes["timeout"] = 200
    stage.start()
    assert host.live_timers() == [pytest.approx(0.2)]


def test_a_timeout_updated_to_zero_disarms_and_keeps_dropping_data() -> None:
    host = FakeHost()
    toxic = _toxic("timeout", timeout=100)
    stage = _stage(toxic, host)
    toxic.attributes["timeout"] = 0
    stage.start()
    sink = _run(stage, host, (1.0, b"a"), (1.0, b"b"))
    stage.stop(removed=False)
    assert (sink.data, host.live_timers(), host.closed) == ([], [], 0)


# -- reset_peer --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [b"first", None])
def test_reset_peer_waits_its_timeout_then_resets_dropping_the_chunk(chunk: bytes | None) -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("reset_peer", timeout=300), host), host, (1.0, chunk))
    assert (host.sleeps, host.reset, sink.data) == ([pytest.approx(0.3)], 1, [])


def test_reset_peer_zero_resets_at_once() -> None:
    host = FakeHost()
    sink = _run(_stage(_toxic("reset_peer", timeout=0), host), host, (1.0, b"x"))
    assert (host.sleeps, host.reset, host.closed, sink.data) == ([], 1, 0, [])


def test_reset_peer_removed_while_waiting_forwards_the_chunk() -> None:
    host = FakeHost()
    stage = _stage(_toxic("reset_peer", timeout=2000), host)

    def remove() -> float:
        stage.stop(removed=True)
        return 0.5

    host.interrupts[1] = remove
    sink = _run(stage, host, (1.0, b"kept"))
    assert (host.reset, sink.data) == (0, [b"kept"])


def test_reset_peer_updated_while_waiting_measures_from_the_chunks_arrival() -> None:
    host = FakeHost()
    toxic = _toxic("reset_peer", timeout=100_000)
    stage = _stage(toxic, host)

    def shorten(timeout: int, slept: float) -> Callable[[], float]:
        def change() -> float:
            toxic.attributes["timeout"] = timeout
            stage.start()
            return slept

        return change

    host.interrupts[1] = shorten(300, 0.1)
    _run(stage, host, (1.0, b"x"))
    assert host.sleeps == [100.0, pytest.approx(0.2)]  # 300 ms from arrival, 100 ms gone
    assert host.reset == 1
    host = FakeHost()
    toxic = _toxic("reset_peer", timeout=10**12)
    stage = _stage(toxic, host)
    host.interrupts[1] = shorten(100, 0.2)
    _run(stage, host, (1.0, b"x"))
    assert (host.sleeps, host.reset) == ([10.0**9], 1)  # already past: at once


def test_reset_peer_whose_new_draw_does_not_apply_forwards_the_chunk() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.0, 0.9)))
    toxic = _toxic("reset_peer", toxicity=0.5, timeout=1000)
    stage = _stage(toxic, host)

    def redraw() -> float:
        stage.start()
        return 0.1

    host.interrupts[1] = redraw
    sink = _run(stage, host, (1.0, b"spared"))
    assert (host.reset, sink.data) == (0, [b"spared"])


def test_reset_peer_keeps_waiting_through_an_unrelated_change() -> None:
    host = FakeHost(interrupts={1: lambda: 0.1})
    _run(_stage(_toxic("reset_peer", timeout=400), host), host, (1.0, b"x"))
    assert host.sleeps == [pytest.approx(0.4), pytest.approx(0.3)]
    assert host.reset == 1


def test_reset_peer_that_does_not_apply_passes_everything() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("reset_peer", toxicity=0.5, timeout=0), host)
    assert _run(stage, host, (1.0, b"x"), (1.0, None)).data == [b"x", None]
    assert host.reset == 0


# -- slicer ------------------------------------------------------------------------------------


def _go_cuts(size: int, average: int, variation: int, rng: random.Random) -> list[int]:
    """Toxiproxy's ``SlicerToxic.chunk`` (recursive), with our guard against empty pieces."""

    def chunk(start: int, end: int) -> list[int]:
        if (end - start) - average <= variation or end - start < 2:
            return [start, end] if end > start else []
        middle = start + (end - start) // 2
        if variation > 0:
            middle += rng.randrange(variation * 2) - variation
        middle = min(max(middle, start + 1), end - 1)
        return chunk(start, middle) + chunk(middle, end)

    bounds = chunk(0, size)
    return [bounds[i + 1] - bounds[i] for i in range(0, len(bounds), 2)]


def _slice(size: int, average: int, variation: int, seed: int, delay: int = 0) -> list[bytes]:
    host = FakeHost(rng=ScriptedRandom(seed))
    stage = _stage(_toxic("slicer", average_size=average, size_variation=variation), host)
    stage.toxic.attributes["delay"] = delay
    data = bytes(index % 251 for index in range(size))
    sink = _run(stage, host, (1.0, data))
    pieces = [piece for piece in sink.data if piece is not None]
    assert b"".join(pieces) == data  # every byte, in order
    return pieces


def test_slicer_halves_until_pieces_are_small_like_toxiproxy() -> None:
    assert [len(piece) for piece in _slice(100, 10, 0, seed=1)] == [6, 6, 6, 7] * 4
    assert [len(piece) for piece in _slice(10, 10, 0, seed=1)] == [10]
    assert [len(piece) for piece in _slice(11, 10, 0, seed=1)] == [5, 6]
    assert [len(piece) for piece in _slice(1, 1, 0, seed=1)] == [1]
    assert [len(piece) for piece in _slice(5, 1, 0, seed=1)] == [1] * 5


@pytest.mark.parametrize(
    ("size", "average", "variation", "seed"),
    [
        (1000, 10, 3, 1),
        (1000, 10, 3, 2),
        (4096, 100, 50, 7),
        (777, 7, 7, 3),
        (64, 1, 1, 5),
        (100_000, 64, 16, 11),
    ],
)
def test_slicer_cuts_are_toxiproxys_algorithm_with_the_seeded_draws(
    size: int, average: int, variation: int, seed: int
) -> None:
    pieces = [len(piece) for piece in _slice(size, average, variation, seed)]
    reference = ScriptedRandom(seed)
    reference.random()  # the stage's toxicity draw comes first
    assert pieces == _go_cuts(size, average, variation, reference)
    assert all(1 <= piece <= average + variation for piece in pieces)
    if variation < average:
        assert min(pieces) >= (average + variation) // 2 - variation - 1


def test_slicer_waits_its_delay_in_microseconds_between_pieces_only() -> None:
    host = FakeHost(rng=ScriptedRandom(1))
    stage = _stage(_toxic("slicer", average_size=10, delay=2500), host)
    sink = _run(stage, host, (1.0, PAYLOAD[:40]))
    assert sink.data == [PAYLOAD[:10], PAYLOAD[10:20], PAYLOAD[20:30], PAYLOAD[30:40]]
    assert host.sleeps == [0.0025] * 3
    assert sink.times == [
        100.0,
        pytest.approx(100.0025),
        pytest.approx(100.005),
        pytest.approx(100.0075),
    ]


def test_slicer_waits_between_one_byte_pieces_too() -> None:
    host = FakeHost(rng=ScriptedRandom(1))
    stage = _stage(_toxic("slicer", average_size=1, delay=5), host)
    sink = _run(stage, host, (1.0, b"abcd"))
    assert (sink.data, host.sleeps) == ([b"a", b"b", b"c", b"d"], [0.000005] * 3)


def test_slicer_without_delay_never_waits() -> None:
    host = FakeHost(rng=ScriptedRandom(1))
    stage = _stage(_toxic("slicer", average_size=1), host)
    sink = _run(stage, host, (1.0, PAYLOAD[:64]))
    assert (len(sink.data), host.sleeps) == (64, [])


def test_a_change_during_a_slicer_delay_flushes_the_rest_in_one_piece() -> None:
    host = FakeHost(rng=ScriptedRandom(1), interrupts={2: lambda: 0.0})
    stage = _stage(_toxic("slicer", average_size=10, delay=10**9), host)
    sink = _run(stage, host, (1.0, PAYLOAD[:40]), (2.0, PAYLOAD[40:45]))
    assert sink.data == [PAYLOAD[:10], PAYLOAD[10:20], PAYLOAD[20:40], PAYLOAD[40:45]]
    assert [read_time for read_time, _data in sink.chunks] == [1.0, 1.0, 1.0, 2.0]


def test_slicer_passes_the_end_of_stream_and_inactive_data_whole() -> None:
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("slicer", toxicity=0.5, average_size=1), host)
    assert _run(stage, host, (1.0, PAYLOAD), (1.0, None)).data == [PAYLOAD, None]


def test_slicer_cuts_lazily_holding_little_state() -> None:
    host = FakeHost(rng=ScriptedRandom(1))
    stage = _stage(_toxic("slicer", average_size=1), host)
    cuts = stage.cuts(1 << 30)  # type: ignore[attr-defined]
    assert [next(cuts) for _ in range(3)] == [(0, 1), (1, 2), (2, 3)]


# -- limit_data --------------------------------------------------------------------------------


def test_limit_data_forwards_up_to_its_bytes_cutting_the_crossing_chunk_then_closes() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=10), host)
    sink = _run(stage, host, (1.0, b"0123"), (1.0, b"456789abcdef"))
    assert (sink.data, host.closed) == ([b"0123", b"456789"], 1)


def test_limit_data_one_byte_short_of_its_limit_stays_open() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=5), host)
    assert (_run(stage, host, (1.0, b"0123")).data, host.closed) == ([b"0123"], 0)


def test_limit_data_closes_on_the_chunk_that_reaches_the_limit_exactly() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=4), host)
    sink = _run(stage, host, (1.0, b"0123"))
    assert (sink.data, host.closed) == ([b"0123"], 1)


def test_limit_data_zero_forwards_nothing_and_closes_at_the_first_chunk() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=0), host)
    sink = _run(stage, host, (1.0, b"x"))
    assert (sink.data, host.closed) == ([], 1)


def test_limit_data_keeps_its_count_across_restarts_of_the_stage() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=6), host)
    sink = _run(stage, host, (1.0, b"0123"))
    stage.start()
    _run(stage, host, (1.0, b"4567"))
    assert host.closed == 1
    assert sink.data == [b"0123"]


def test_limit_data_passes_the_end_of_stream_and_does_not_count_when_inactive() -> None:
    host = FakeHost()
    stage = _stage(_toxic("limit_data", bytes=10), host)
    assert (_run(stage, host, (1.0, None)).data, host.closed) == ([None], 0)
    host = FakeHost(rng=ScriptedRandom(draws=(0.9,)))
    stage = _stage(_toxic("limit_data", toxicity=0.5, bytes=1), host)
    assert (_run(stage, host, (1.0, b"abc")).data, host.closed) == ([b"abc"], 0)

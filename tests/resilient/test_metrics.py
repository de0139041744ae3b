"""The metrics sinks: after every pattern went through a fault (``metrics_world``), the names,
types and labels read back from a live prometheus-client registry and from an OpenTelemetry
SDK in-memory reader are the documented scheme; no label grows with what callers send; a sink
never raises into a guard."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import resilient.metrics
import resilient.metrics.otel
from resilient import CircuitBreaker, VirtualClock
from resilient.events import DEFAULT_EVENTS, Event, EventBus, logging_listener
from resilient.metrics import (
    DEFAULT_MAX_NAMES,
    OTHER_NAME,
    SCHEME,
    MetricsSink,
    drop_reason,
    metric_named,
    scheme_table,
)
from resilient.metrics.otel import OtelSink
from resilient.metrics.prometheus import PrometheusSink
from tests.resilient.metrics_world import NAMES, World, run_world

README = Path(__file__).resolve().parents[2] / "README.md"
VERDICTS = ("pass", "violation", "missing", "error")
KEYS = [f"user-{i}" for i in range(10)]


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


def hostile_keys(count: int) -> list[str]:
    """Distinct keys a client could send: lone surrogates, control characters, quotes, label
    syntax, very long ones."""
    shapes = ["\ud800#", "#\udfff", 'a"b#\\', "x\n#\r", "#" + "é" * 300, "}=,{#", "#"]
    return [shapes[i % len(shapes)].replace("#", str(i)) for i in range(count)]


def prometheus_series(registry: CollectorRegistry) -> dict[str, tuple[str, set[tuple[Any, ...]]]]:
    """Family name -> (type, the label sets of its samples) for every resilient family."""
    found: dict[str, tuple[str, set[tuple[Any, ...]]]] = {}
    for family in registry.collect():
        if family.name.startswith("resilient_"):
            labels = {tuple(sorted(sample.labels.items())) for sample in family.samples}
            found[family.name] = (family.type, labels)
    return found


def check_labels(metric_name: str, labels: dict[str, str]) -> None:
    """Every label of a sample is the scheme's: a closed value, or a name the world gave."""
    metric = metric_named(metric_name)
    assert set(labels) == set(metric.label_names), metric_name
    for label in metric.labels:
        value = labels[label.name]
        if label.values is not None:
            assert value in label.values, (metric_name, label.name, value)
        else:
            assert value in NAMES[label.name] | {OTHER_NAME}, (metric_name, label.name, value)


async def prometheus_world(keys: list[str]) -> tuple[CollectorRegistry, World]:
    bus, registry = quiet(), CollectorRegistry()
    sink = PrometheusSink(registry, events=bus)
    return registry, await run_world(sink, bus, keys)


# -- the scheme, as documented -----------------------------------------------------------------


def test_the_documented_tables_are_the_scheme() -> None:
    assert scheme_table(values=False) in (resilient.metrics.__doc__ or "")
    assert scheme_table() in README.read_text()


def test_each_backend_derives_its_names_from_the_scheme() -> None:
    metric = metric_named("resilient_pool_gate_refused_total")
    assert (metric.otel_name, metric.kind, metric.label_names) == (
        "resilient.pool.gate.refused",
        "counter",
        ("gate",),
    )
    assert metric_named("resilient_bulkhead_limit").otel_name == "resilient.bulkhead.limit"
    with pytest.raises(KeyError):
        metric_named("resilient_pool_gate_refused")


def test_names_follow_each_backends_conventions() -> None:
    names = [metric.prometheus_name for metric in SCHEME]
    assert len(set(names)) == len(names)
    for metric in SCHEME:
        assert re.fullmatch(r"resilient(_[a-z0-9]+)+", metric.prometheus_name)
        assert metric.prometheus_name.endswith("_total") == (metric.kind == "counter")
        assert re.fullmatch(r"resilient(\.[a-z0-9_]+)+", metric.otel_name)
        assert not metric.otel_name.endswith("_total")
        assert re.fullmatch(r"1|\{[a-z]+\}", metric.unit)
        assert len(set(metric.label_names)) == len(metric.label_names)
        for label in metric.labels:
            assert re.fullmatch(r"[a-z_]+", label.name)
            assert all(re.fullmatch(r"[a-z_]+", value) for value in label.values or ())


# -- Prometheus --------------------------------------------------------------------------------


WORLD = {
    ("resilient_ratelimit_decisions_total", ("api-limit", "fallback")): 10,
    ("resilient_ratelimit_degraded_decisions_total", ("api-limit", "breaker_open")): 5,
    ("resilient_ratelimit_degraded_decisions_total", ("api-limit", "unavailable")): 5,
    ("resilient_ratelimit_degraded", ("api-limit",)): 1,
    ("resilient_breaker_state", ("payments", "closed")): 1,
    ("resilient_breaker_state", ("ratelimit.guard", "open")): 1,
    ("resilient_breaker_transitions_total", ("payments", "closed", "open")): 1,
    ("resilient_breaker_transitions_total", ("payments", "half_open", "closed")): 1,
    ("resilient_breaker_transitions_total", ("payments", "open", "half_open")): 1,
    ("resilient_breaker_transitions_total", ("ratelimit.guard", "closed", "open")): 1,
    ("resilient_breaker_calls_total", ("payments", "failure")): 5,
    ("resilient_breaker_calls_total", ("payments", "success")): 1,
    ("resilient_breaker_calls_total", ("ratelimit.guard", "failure")): 5,
    ("resilient_breaker_calls_total", ("ratelimit.guard", "rejected")): 5,
    ("resilient_pool_connections", ("backend-pool", "idle")): 1,
    ("resilient_pool_connects_total", ("backend-pool",)): 2,
    ("resilient_pool_closed_connections_total", ("backend-pool", "discarded")): 1,
    ("resilient_pool_gate_admitted_total", ("backend",)): 2,
    ("resilient_pool_gate_connects_total", ("backend", "success")): 2,
    ("resilient_release_queued_actions", ("engines",)): 1,
    ("resilient_release_paused", ("engines",)): 1,
    ("resilient_release_actions_total", ("engines", "done")): 1,
    ("resilient_release_actions_total", ("engines", "dropped")): 3,
    ("resilient_release_actions_total", ("engines", "superseded")): 1,
    ("resilient_release_dropped_actions_total", ("stale",)): 3,
    ("resilient_rollout_state", ("config", "rolled_back")): 1,
    ("resilient_rollout_gate_verdicts_total", ("config", "latency", "pass")): 1,
    ("resilient_rollout_gate_verdicts_total", ("config", "success_ratio", "violation")): 1,
    ("resilient_rollout_rollbacks_total", ("config",)): 1,
    ("resilient_retry_calls_total", ("provider",)): 2,
    ("resilient_retry_retries_total", ("provider",)): 1,
    ("resilient_retry_gave_up_total", ("provider", "budget")): 2,
    ("resilient_retry_budget_requests_total", ("retries",)): 2,
    ("resilient_retry_budget_spent_total", ("retries",)): 1,
    ("resilient_retry_budget_refused_total", ("retries",)): 2,
    ("resilient_failover_attempts_total", ("failover", "one")): 31,
    ("resilient_failover_attempts_total", ("failover", "two")): 2,
    ("resilient_failover_failures_total", ("failover", "one")): 1,
    ("resilient_failover_failures_total", ("failover", "two")): 1,
    ("resilient_failover_hedges_total", ("failover", "two")): 1,
    ("resilient_failover_hedges_won_total", ("failover", "two")): 1,
    ("resilient_failover_fallbacks_total", ("failover",)): 1,
    ("resilient_bulkhead_limit", ("db",)): 1,
    ("resilient_bulkhead_admitted_total", ("db",)): 1,
    ("resilient_bulkhead_shed_total", ("db", "full")): 1,
}  # fmt: skip
"""Every sample the world leaves that is not 0: (metric, label values in the scheme's order)."""


async def test_prometheus_reads_back_the_scheme_after_every_pattern_failed() -> None:
    registry, world = await prometheus_world(KEYS)
    series = prometheus_series(registry)
    assert set(series) == {metric.prometheus_name.removesuffix("_total") for metric in SCHEME}
    for metric in SCHEME:
        kind, label_sets = series[metric.prometheus_name.removesuffix("_total")]
        assert kind == metric.kind
        assert label_sets, f"{metric.prometheus_name} has no sample after the world ran"
        for labels in label_sets:
            check_labels(metric.prometheus_name, dict(labels))
    read = {
        (sample.name, tuple(sample.labels[key] for key in metric_named(sample.name).label_names)): (
            sample.value
        )
        for family in registry.collect()
        if family.name.startswith("resilient_")
        for sample in family.samples
        if sample.value
    }
    assert read == WORLD
    generate_latest(registry).decode("utf-8")  # the exposition of it all is valid UTF-8
    assert world.instances  # watched until here


async def test_hostile_keys_never_grow_a_label() -> None:
    """10,000 distinct keys, lone surrogates among them, change no label set: the same series
    as a run with ten plain keys."""
    plain, plain_world = await prometheus_world(KEYS)
    hostile, hostile_world = await prometheus_world(hostile_keys(10_000))
    assert {name: labels for name, (_, labels) in prometheus_series(hostile).items()} == {
        name: labels for name, (_, labels) in prometheus_series(plain).items()
    }
    exposition = generate_latest(hostile).decode("utf-8")
    assert "user-" not in exposition
    assert "\\ud800" not in exposition
    assert plain_world.instances  # watched until here
    assert hostile_world.instances


async def test_names_are_made_safe_and_bounded() -> None:
    bus, registry = quiet(), CollectorRegistry()
    sink = PrometheusSink(registry, events=bus, max_names=3)
    clock = VirtualClock()
    breakers = [
        sink.watch(CircuitBreaker(name, clock=clock, events=bus))
        for name in ["\ud800lone", "x" * 500, "b", "c", "d"]
    ]
    for breaker in breakers:
        breaker.isolate()
    names = {
        sample.labels["breaker"]
        for family in registry.collect()
        if family.name == "resilient_breaker_state"
        for sample in family.samples
    }
    assert names == {"\\ud800lone", "x" * 100, "b", OTHER_NAME}
    text = generate_latest(registry).decode("utf-8")
    assert 'resilient_breaker_calls_total{breaker="_other",outcome="success"} 0.0' in text
    state = registry.get_sample_value
    assert state("resilient_breaker_state", {"breaker": OTHER_NAME, "state": "isolated"}) == 1


def test_by_default_a_sink_listens_on_the_default_bus_and_registers_on_the_registry() -> None:
    sink = PrometheusSink()
    try:
        DEFAULT_EVENTS.emit(Event("failover", "fallback", attributes={"failover": "default"}))
        assert (
            REGISTRY.get_sample_value("resilient_failover_fallbacks_total", {"failover": "default"})
            == 1
        )
    finally:
        sink.close()
    assert (
        REGISTRY.get_sample_value("resilient_failover_fallbacks_total", {"failover": "default"})
        is None
    )


def test_past_its_names_a_sink_reports_every_new_name_as_other() -> None:
    sink = MetricsSink(events=quiet())
    for i in range(DEFAULT_MAX_NAMES + 1):
        sink.on_event(Event("failover", "fallback", attributes={"failover": f"f{i}"}))
    fallbacks = sink.samples()["resilient_failover_fallbacks_total"]
    assert len(fallbacks) == DEFAULT_MAX_NAMES + 1
    assert fallbacks[(OTHER_NAME,)] == 1
    assert fallbacks[(f"f{DEFAULT_MAX_NAMES - 1}",)] == 1
    assert DEFAULT_MAX_NAMES == 1000  # the README says so


async def test_close_unregisters_and_stops_listening() -> None:
    bus, registry = quiet(), CollectorRegistry()
    sink = PrometheusSink(registry, events=bus)
    breaker = sink.watch(CircuitBreaker("payments", clock=VirtualClock(), events=bus))
    sink.close()
    breaker.isolate()
    assert prometheus_series(registry) == {}
    assert "resilient_breaker_transitions_total" not in sink.samples()
    PrometheusSink(registry, events=bus).close()  # the names are free again


def test_registered_nowhere_when_the_registry_is_none() -> None:
    sink = PrometheusSink(None, events=quiet())
    assert {family.name for family in sink.collect()} == {
        metric.prometheus_name.removesuffix("_total") for metric in SCHEME
    }
    assert {family.name for family in sink.describe()} == {family.name for family in sink.collect()}
    sink.close()


# -- OpenTelemetry -----------------------------------------------------------------------------


async def test_opentelemetry_reads_back_the_scheme_after_every_pattern_failed() -> None:
    reader = InMemoryMetricReader()
    bus = quiet()
    sink = OtelSink(MeterProvider(metric_readers=[reader]), events=bus)
    world = await run_world(sink, bus, KEYS)
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "resilient"
        for metric in scope.metrics
    }
    assert set(found) == {metric.otel_name for metric in SCHEME}, {
        metric.otel_name for metric in SCHEME
    } ^ set(found)
    for metric in SCHEME:
        read = found[metric.otel_name]
        assert read.unit == metric.unit
        assert read.description == metric.help
        if metric.kind == "counter":
            assert isinstance(read.data, Sum)
            assert read.data.is_monotonic
        else:
            assert isinstance(read.data, Gauge)
        assert read.data.data_points, metric.otel_name
        for point in read.data.data_points:
            check_labels(metric.prometheus_name, dict(point.attributes or {}))
    read = {
        (metric.prometheus_name, tuple((point.attributes or {})[k] for k in metric.label_names)): (
            point.value
        )
        for metric in SCHEME
        for point in found[metric.otel_name].data.data_points
        if point.value
    }
    assert read == WORLD
    (scope,) = {
        scope.scope for resource in data.resource_metrics for scope in resource.scope_metrics
    }
    assert (scope.name, scope.version) == ("resilient", version("resilient-chaos"))
    sink.close()
    assert world.instances
    after = reader.get_metrics_data()
    assert after is None or not any(
        scope.metrics
        for resource in after.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "resilient"
    )


async def test_degraded_decisions_fallbacks_and_rollbacks_are_span_events() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("test")
    bus = quiet()
    sink = OtelSink(MeterProvider(), events=bus)
    with tracer.start_as_current_span("request"):
        await run_world(sink, bus, hostile_keys(10))
    (span,) = exporter.get_finished_spans()
    events = {event.name: dict(event.attributes or {}) for event in span.events}
    assert set(events) == {
        "resilient.ratelimit.guard.degraded",
        "resilient.failover.fallback",
        "resilient.rollout.rolled_back",
    }
    assert events["resilient.ratelimit.guard.degraded"] == {
        "reason": "primary unavailable: ConnectionError",
        "mode": "fallback",
    }
    assert events["resilient.rollout.rolled_back"]["candidate"] == 2
    # no current span: nothing is recorded, nothing raises
    bus.emit(Event("failover", "fallback", attributes={"failover": "f", "reason": "\ud800"}))
    sink.close()


def test_the_meter_version_of_a_checkout_never_installed_is_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(resilient.metrics.otel, "version", missing)
    assert resilient.metrics.otel._version() == "0"


def test_span_event_attributes_are_text_numbers_and_flags_cut_to_size() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = quiet()
    sink = OtelSink(MeterProvider(), events=bus)
    hostile = {"reason": "\udfff" + "r" * 1000, "n": 3, "ok": True, "x": 0.5, "t": (1, 2)}
    with tracer_provider.get_tracer("test").start_as_current_span("request"):
        bus.emit(Event("rollout", "rolled_back", attributes={1: "not a str key", **hostile}))
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert dict(event.attributes or {}) == {
        "reason": "\\udfff" + "r" * 255,
        "n": 3,
        "ok": True,
        "x": 0.5,
    }
    sink.close()


# -- a sink never raises into a guard ----------------------------------------------------------


GARBAGE = [
    Event("breaker", "opened", attributes={"breaker": ["unhashable"], "previous": {}}),
    Event("breaker", "opened", attributes={"breaker": "b", "previous": ["unhashable"]}),
    Event("breaker", "closed", attributes={"breaker": "b", "previous": "sideways"}),
    Event("breaker", "isolated", attributes={}),
    Event("release", "dropped", attributes={"reason": ["not", "text"]}),
    Event("rollout", "evaluated", attributes={"rollout": "r", "verdicts": "pass"}),
    Event(
        "rollout",
        "evaluated",
        attributes={"rollout": "r", "verdicts": (("g",), ("g", ["x"], ""), ([], "pass", ""))},
    ),
    Event("rollout", "evaluated", attributes={"rollout": None, "verdicts": (("g", "pass", ""),)}),
    Event("rollout", "rolled_back", attributes={"rollout": 7}),
    Event("failover", "fallback", attributes={"failover": b"bytes"}),
]


def test_malformed_events_count_nothing_and_raise_nothing() -> None:
    sink = MetricsSink(events=quiet())
    for event in GARBAGE:
        sink.on_event(event)
    assert sink.samples() == {
        "resilient_release_dropped_actions_total": {("revalidate",): 1},
    }
    verdicts = (("g",), ("g2", "pass", ""))  # one malformed, then one to count
    sink.on_event(Event("rollout", "evaluated", attributes={"rollout": "r", "verdicts": verdicts}))
    assert sink.samples()["resilient_rollout_gate_verdicts_total"] == {("r", "g2", "pass"): 1}


def test_every_verdict_of_every_gate_is_counted() -> None:
    sink = MetricsSink(events=quiet())
    verdicts = tuple((f"g{i}", said, "detail") for i, said in enumerate(VERDICTS))
    sink.on_event(Event("rollout", "evaluated", attributes={"rollout": "r", "verdicts": verdicts}))
    assert sink.samples() == {
        "resilient_rollout_gate_verdicts_total": {
            ("r", f"g{i}", said): 1 for i, said in enumerate(VERDICTS)
        }
    }


def test_a_listener_that_raises_is_logged_by_the_bus_and_the_guard_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = quiet()
    sink = MetricsSink(events=bus)

    def broken(event: Event) -> None:
        raise RuntimeError("a broken sink")

    bus.subscribe(broken)
    breaker = CircuitBreaker("payments", clock=VirtualClock(), events=bus)
    with caplog.at_level(logging.ERROR, "resilient.events"):
        breaker.isolate()  # emits: the broken listener raises, the bus logs it
    assert "event listener" in caplog.text
    assert "a broken sink" in caplog.text
    assert sink.samples()["resilient_breaker_state"][("payments", "isolated")] == 1


def test_a_watched_instance_whose_stats_raise_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("no stats")

    sink = MetricsSink(events=quiet())
    clock = VirtualClock()
    broken = sink.watch(CircuitBreaker("broken", clock=clock, events=quiet()))
    broken.stats = Exploding()  # type: ignore[assignment]
    sink.watch(CircuitBreaker("fine", clock=clock, events=quiet()))
    with caplog.at_level(logging.ERROR, "resilient.metrics"):
        calls = sink.samples()["resilient_breaker_calls_total"]
    assert {labels[0] for labels in calls} == {"fine"}
    (record,) = caplog.records
    assert (record.name, record.getMessage()) == (
        "resilient.metrics",
        "metrics: reading CircuitBreaker 'broken' failed",
    )


# -- watching ----------------------------------------------------------------------------------


def test_an_instance_no_longer_used_is_forgotten() -> None:
    sink = MetricsSink(events=quiet())
    sink.watch(CircuitBreaker("gone", clock=VirtualClock(), events=quiet()))
    gc.collect()
    assert "resilient_breaker_calls_total" not in sink.samples()
    kept = sink.watch(CircuitBreaker("kept", clock=VirtualClock(), events=quiet()))
    assert [label for _, label, _ in sink._watched] == ["kept"]  # the one gone is forgotten
    assert kept.name == "kept"


def test_a_scrape_skips_an_instance_gone_and_reads_the_next() -> None:
    sink = MetricsSink(events=quiet())
    sink.watch(CircuitBreaker("gone", clock=VirtualClock(), events=quiet()))
    kept = sink.watch(CircuitBreaker("kept", clock=VirtualClock(), events=quiet()))
    gc.collect()
    calls = sink.samples()["resilient_breaker_calls_total"]
    assert {labels[0] for labels in calls} == {"kept"}
    assert kept.name == "kept"


def test_a_healthy_guard_and_a_running_queue_read_0() -> None:
    from resilient import FailOpenGuard, LocalLimiter, Rate, ReleaseQueue, ReleaseState

    sink = MetricsSink(events=quiet())
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(1, 1.0), clock=clock)
    guard = sink.watch(FailOpenGuard(limiter, fallback=limiter, clock=clock, events=quiet()), "g")
    queue = sink.watch(ReleaseQueue(lambda: ReleaseState(1, 1), clock=clock, events=quiet()), "q")
    samples = sink.samples()
    assert samples["resilient_ratelimit_degraded"] == {("g",): 0}
    assert samples["resilient_release_paused"] == {("q",): 0}
    assert (guard.degraded, queue.paused) == (False, False)


def test_an_isolated_breaker_reset_is_a_transition_from_isolated() -> None:
    bus = quiet()
    sink = MetricsSink(events=bus)
    breaker = CircuitBreaker("payments", clock=VirtualClock(), events=bus)
    breaker.isolate()
    breaker.reset()
    samples = sink.samples()
    assert samples["resilient_breaker_transitions_total"] == {
        ("payments", "closed", "isolated"): 1,
        ("payments", "isolated", "closed"): 1,
    }
    assert samples["resilient_breaker_state"][("payments", "closed")] == 1


def test_the_samples_type_is_public() -> None:
    assert resilient.metrics.Samples == dict[str, dict[tuple[str, ...], float]]


def test_instances_watched_under_one_name_add_up() -> None:
    sink = MetricsSink(events=quiet())
    for _ in range(2):
        breaker = sink.watch(CircuitBreaker("twin", clock=VirtualClock(), events=quiet()))
        breaker.stats.failures = 3
    assert sink.samples()["resilient_breaker_calls_total"][("twin", "failure")] == 6


def test_watch_needs_a_pattern_and_a_name() -> None:
    sink = MetricsSink(events=quiet())
    with pytest.raises(TypeError) as raised:
        sink.watch(object())
    assert str(raised.value) == (
        "MetricsSink.watch(target) must be a FailOpenGuard, CircuitBreaker, BoundedPool, "
        "ConnectGate, ReleaseQueue, ConfigRollout, RetryPolicy, RetryBudget, Failover or "
        "Bulkhead, got object"
    )
    from resilient import RetryBudget

    with pytest.raises(TypeError) as raised:
        sink.watch(RetryBudget(events=quiet()))
    assert str(raised.value) == (
        "MetricsSink.watch(name) is required for a RetryBudget (it has no name of its own)"
    )
    with pytest.raises(ValueError, match=r"^MetricsSink\.watch\(name\) must be a non-empty str"):
        sink.watch(RetryBudget(events=quiet()), "")
    with pytest.raises(
        TypeError, match=r"^MetricsSink\.events must be an EventBus, got <object .*>$"
    ):
        MetricsSink(events=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^MetricsSink\.max_names must be an int >= 1, got 0$"):
        MetricsSink(max_names=0)
    one = MetricsSink(max_names=1, events=quiet())
    for name in ("a", "b", "a"):
        one.on_event(Event("failover", "fallback", attributes={"failover": name}))
    assert one.samples()["resilient_failover_fallbacks_total"] == {("a",): 2, (OTHER_NAME,): 1}


def test_a_bus_that_logged_keeps_logging(caplog: pytest.LogCaptureFixture) -> None:
    logging_bus = EventBus()
    sink = MetricsSink(events=logging_bus)
    with caplog.at_level(logging.INFO, "resilient.breaker"):
        CircuitBreaker("payments", clock=VirtualClock(), events=logging_bus).isolate()
    assert "isolated breaker='payments'" in caplog.text
    sink.close()
    assert logging_bus.logs_unobserved  # closed: the bus is as it was
    observed = quiet()
    observed.subscribe(lambda event: None)
    sink = MetricsSink(events=observed)
    assert logging_listener not in observed._listeners


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("stale: based on version 3, state is 5", "stale"),
        ("expired: 340 s old, max_age 300 s", "expired"),
        ("over budget: takes out 9 units", "over_budget"),
        ("closed", "closed"),
        ("closed: the release queue failed (boom)", "closed"),
        ("revalidate raised ValueError: x", "revalidate"),
        ("the callback's own words", "revalidate"),
        (None, "revalidate"),
    ],
)
def test_a_drop_reason_is_one_of_a_closed_set(reason: object, label: str) -> None:
    assert drop_reason(reason) == label


async def test_samples_can_be_read_while_events_arrive() -> None:
    """A scrape reads copies: events counted meanwhile never break it."""
    bus = quiet()
    sink = MetricsSink(events=bus)
    clock = VirtualClock()
    breakers = [CircuitBreaker(f"b{i}", clock=clock, events=bus) for i in range(50)]
    reads = []
    for breaker in breakers:
        breaker.isolate()
        reads.append(len(sink.samples()["resilient_breaker_state"]))
        await asyncio.sleep(0)
    assert reads == [4 * (i + 1) for i in range(50)]

"""Every pattern's metrics through the OpenTelemetry API, and span events (extra ``otel``).

::

    from resilient.metrics.otel import OtelSink

    sink = OtelSink()                    # the global meter provider, DEFAULT_EVENTS
    sink.watch(guard, "redis-limit")

:class:`OtelSink` is a :class:`~resilient.metrics.MetricsSink` that makes one observable
instrument per metric of :data:`~resilient.metrics.SCHEME` on a meter named
``"resilient"``: an observable counter for a counter, an observable gauge for a gauge, named
``resilient.<pattern>.<what>`` with the scheme's unit and its labels as attributes. The SDK's
reader calls them when it collects; nothing is paid in between. Without an SDK configured the
API's meter is a no-op, and so is the sink's reading.

Where a span is current and recording, the events that say a caller got a degraded answer or
a change was undone are also span events on it, named ``resilient.<source>.<event>`` with the
event's attributes (text cut to :data:`SPAN_TEXT_CHARS` characters): the guard's
``degraded`` (emitted by the decision that started a degraded stretch), a failover's
``fallback`` (every request that got the fallback's answer) and a rollout's ``rolled_back``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from resilient.events import DEFAULT_EVENTS, Event, EventBus
from resilient.metrics._scheme import SCHEME, Metric
from resilient.metrics._sink import DEFAULT_MAX_NAMES, MetricsSink, safe_text

__all__ = ["SPAN_EVENTS", "SPAN_TEXT_CHARS", "OtelSink"]

SPAN_EVENTS = frozenset(
    {("ratelimit.guard", "degraded"), ("failover", "fallback"), ("rollout", "rolled_back")}
)
"""``(source, name)`` of the events that are also span events on the current span."""
SPAN_TEXT_CHARS = 256
"""Characters of a text attribute kept in a span event."""


class OtelSink(MetricsSink):
    """A :class:`~resilient.metrics.MetricsSink` observed through ``meter_provider`` (the
    global one unless given). :meth:`close` stops listening; its instruments then observe
    nothing (the API cannot remove an instrument)."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        events: EventBus = DEFAULT_EVENTS,
        max_names: int = DEFAULT_MAX_NAMES,
    ) -> None:
        super().__init__(events=events, max_names=max_names)
        self._closed = False
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("resilient", _version())
        for metric in SCHEME:
            callbacks = [self._observer(metric)]
            name, unit, help = metric.otel_name, metric.unit, metric.help
            if metric.kind == "counter":
                meter.create_observable_counter(name, callbacks, unit=unit, description=help)
            else:
                meter.create_observable_gauge(name, callbacks, unit=unit, description=help)

    def on_event(self, event: Event) -> None:
        """Count ``event``; one of :data:`SPAN_EVENTS` is also a span event on the current
        span, when that span records."""
        super().on_event(event)
        if (event.source, event.name) in SPAN_EVENTS:
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(f"resilient.{event.source}.{event.name}", _attributes(event))

    def _observer(self, metric: Metric) -> Callable[[CallbackOptions], Iterable[Observation]]:
        name, keys = metric.prometheus_name, metric.label_names

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if self._closed:
                return []
            series = self.samples().get(name, {})
            return [
                Observation(value, dict(zip(keys, values, strict=True)))
                for values, value in series.items()
            ]

        return observe

    def close(self) -> None:
        super().close()
        self._closed = True


def _attributes(event: Event) -> dict[str, str | bool | int | float]:
    """The event's attributes a span event can carry: text (cut), numbers and flags."""
    kept: dict[str, str | bool | int | float] = {}
    for key, value in event.attributes.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, str):
            kept[safe_text(key, SPAN_TEXT_CHARS)] = safe_text(value, SPAN_TEXT_CHARS)
        elif isinstance(value, bool | int | float):
            kept[safe_text(key, SPAN_TEXT_CHARS)] = value
    return kept


def _version() -> str:
    try:
        return version("resilient-chaos")
    except PackageNotFoundError:  # run from a checkout never installed
        return "0"

"""Every pattern's metrics on a prometheus-client registry (extra ``prometheus``).

::

    from prometheus_client import start_http_server
    from resilient.metrics.prometheus import PrometheusSink

    sink = PrometheusSink()              # listens on DEFAULT_EVENTS, registers on REGISTRY
    sink.watch(guard, "redis-limit")     # a guard's decisions, read at each scrape
    sink.watch(breaker)                  # its calls (its transitions come as events)
    start_http_server(9100)

:class:`PrometheusSink` is a :class:`~resilient.metrics.MetricsSink` and a prometheus-client
collector: at each scrape it turns :meth:`~resilient.metrics.MetricsSink.samples` into the
families of :data:`~resilient.metrics.SCHEME`, named as Prometheus wants (``_total`` on a
counter; every figure a count, so no unit suffix). Nothing is paid between scrapes but the
count of the few events the scheme takes from events. A family with no sample yet is
reported empty, so the whole scheme is visible from the first scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.metrics._scheme import SCHEME
from resilient.metrics._scheme import Metric as SchemeMetric
from resilient.metrics._sink import DEFAULT_MAX_NAMES, MetricsSink

__all__ = ["PrometheusSink"]


class PrometheusSink(MetricsSink, Collector):
    """A :class:`~resilient.metrics.MetricsSink` registered as a collector on ``registry``
    (prometheus-client's default ``REGISTRY`` unless given; None: registered nowhere, for a
    caller that registers it itself). :meth:`close` stops listening and unregisters it."""

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        events: EventBus = DEFAULT_EVENTS,
        max_names: int = DEFAULT_MAX_NAMES,
    ) -> None:
        super().__init__(events=events, max_names=max_names)
        self._registry = registry
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """The families of the scheme, with every sample now (prometheus-client calls it)."""
        samples = self.samples()
        for metric in SCHEME:
            family = _family(metric)
            for values, value in samples.get(metric.prometheus_name, {}).items():
                family.add_metric(list(values), value)
            yield family

    def describe(self) -> Iterator[Metric]:
        """The families, without samples: what the registry checks for clashing names."""
        for metric in SCHEME:
            yield _family(metric)

    def close(self) -> None:
        """Stop listening, and unregister from the registry."""
        super().close()
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.unregister(self)


def _family(metric: SchemeMetric) -> CounterMetricFamily | GaugeMetricFamily:
    """The empty family of ``metric``, with its help and label names."""
    kind = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
    return kind(metric.prometheus_name, metric.help, labels=list(metric.label_names))

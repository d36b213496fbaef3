"""Prometheus metrics: requests by route and status, refused connections, the pool, the event streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chatsvc.db import Pool
from chatsvc.live.hub import EventHub
from chatsvc.replica import Replica

# Seconds; from a cached read to a slow send, and event streams (whole-stream durations) at the top.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600)


class Metrics:
    """The application's own registry (two apps in one process do not share counters)."""

    def __init__(self, state: Callable[[], tuple[Pool | None, EventHub | None, Replica | None]]) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "chatsvc_http_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "chatsvc_http_request_duration_seconds",
            "Time from a request's arrival to its answer (an event stream's whole life).",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.refused_connections = Counter(
            "chatsvc_connections_refused",
            "Client connections answered 503 and closed because the process had CHATSVC_MAX_CONNECTIONS open.",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(state))
        # The labelled children, by (method, route, status): looked up once each,
        # not on every request (prometheus-client takes a lock for a lookup).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def refuse_connection(self) -> None:
        """Counts one connection refused by the connection cap."""
        self.refused_connections.inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Counts one answered request and its duration."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)


class _StateCollector(Collector):
    """Gauges read at scrape time: the pool, the event streams, the replica."""

    def __init__(self, state: Callable[[], tuple[Pool | None, EventHub | None, Replica | None]]) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        database, events, replica = self._state()
        if database is not None:
            yield GaugeMetricFamily("chatsvc_pool_size", "Connections the pool holds.", database.size)
            yield GaugeMetricFamily(
                "chatsvc_pool_max_size", "Most connections the pool opens.", database.max_size
            )
            yield GaugeMetricFamily(
                "chatsvc_pool_in_use", "Connections lent to requests.", database.size - database.idle
            )
            yield GaugeMetricFamily(
                "chatsvc_pool_waiters", "Requests waiting for a connection.", database.waiting
            )
        if events is not None:
            yield GaugeMetricFamily(
                "chatsvc_sse_subscribers", "Open event streams in this process.", events.subscriber_count
            )
            yield GaugeMetricFamily(
                "chatsvc_events_listener_connected",
                "1 while the process's LISTEN connection for live events is up; new streams get 503 while 0.",
                int(events.listening),
            )
        if replica is not None:
            yield GaugeMetricFamily(
                "chatsvc_replica_up",
                "1 while reads may use the replica (CHATSVC_REPLICA_DATABASE_URL); 0 while they use the primary.",
                int(replica.up),
            )
            if replica.lag_seconds is not None and replica.lag_bytes is not None:
                yield GaugeMetricFamily(
                    "chatsvc_replica_lag_seconds",
                    "How stale a read without Chatsvc-Position may be: since the replica's last"
                    " replayed transaction, 0 when it has replayed everything (measured every second).",
                    replica.lag_seconds,
                )
                yield GaugeMetricFamily(
                    "chatsvc_replica_lag_bytes", "WAL the replica has still to replay.", replica.lag_bytes
                )

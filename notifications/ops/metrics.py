"""Prometheus metrics: counters written by every process, gauges read at scrape time.

Delivery counters are incremented where the work happens, in the worker processes, from the
engine's signals (channels_delivery.signals). With PROMETHEUS_MULTIPROC_DIR set (Procfile,
compose), prometheus_client's multiprocess mode has each process write its own file there and
/metrics sums them, so one scrape of the web process shows every worker process on its machine;
on a machine with workers only, NOTIFY_WORKER_METRICS_PORT makes the worker's main process serve
the same sum (start_worker_exporter). Shared state (circuit breakers, queue depths, the oldest
waiting delivery) is read once per scrape by StateCollector, not counted per process.
"""

import ipaddress
import logging
import time

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from channels_delivery.engine import signals
from notifications import shared_state

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

DELIVERIES = Counter(
    "notify_delivery_attempts_total", "Provider calls by channel, provider and outcome.",
    ["channel", "provider", "outcome"],
)
SENT_LATENCY = Histogram(
    "notify_delivery_latency_seconds", "Notification created -> delivery sent.",
    ["channel", "provider"], buckets=LATENCY_BUCKETS,
)
CALL_DURATION = Histogram(
    "notify_provider_call_seconds", "Duration of one provider call.", ["channel", "provider"], buckets=CALL_BUCKETS,
)
RETRIES = Counter("notify_delivery_retries_total", "Retries scheduled.", ["channel"])
FALLBACKS = Counter("notify_fallbacks_total", "Fallbacks to the next channel of a chain.", ["from_channel", "to_channel"])
DEAD_LETTERS = Counter("notify_dead_letters_total", "Deliveries that failed with nothing left in their chain.", ["channel"])
RATE_LIMIT_WAITS = Counter("notify_rate_limit_waits_total", "Deliveries re-queued by a token bucket.", ["provider"])
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "notify_rate_limit_wait_seconds", "Wait booked by the token bucket.", ["provider"], buckets=CALL_BUCKETS,
)
API_REQUESTS = Counter("notify_http_requests_total", "HTTP requests by route, method and status.",
                       ["route", "method", "status"])
API_LATENCY = Histogram("notify_http_request_seconds", "HTTP request latency by route and method.",
                        ["route", "method"], buckets=CALL_BUCKETS)
WS_HANDSHAKES = Counter("notify_ws_handshakes_total", "WebSocket handshakes: accepted, refused (no or a bad token: "
                        "4401), busy (over NOTIFY_WS_MAX_PENDING_HANDSHAKES: 403), unavailable (Postgres unreachable: 403).",
                        ["outcome"])
WS_PUSHES = Counter("notify_ws_pushes_total", "Events the relays handed to WebSocket connections: queued, or "
                    "dropped (the oldest of a slow connection's full backlog).", ["outcome"])


def on_attempt(sender, channel, provider, outcome, duration, **_):
    DELIVERIES.labels(channel, provider or "none", str(outcome)).inc()
    CALL_DURATION.labels(channel, provider or "none").observe(duration)


def on_sent(sender, channel, provider, latency, **_):
    SENT_LATENCY.labels(channel, provider).observe(max(latency, 0.0))


def on_retry(sender, channel, wait, **_):
    RETRIES.labels(channel).inc()


def on_fallback(sender, from_channel, to_channel, **_):
    FALLBACKS.labels(from_channel, to_channel).inc()


def on_dead_letter(sender, channel, **_):
    DEAD_LETTERS.labels(channel).inc()


def on_rate_limited(sender, provider, wait, **_):
    RATE_LIMIT_WAITS.labels(provider).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(provider).observe(wait)


def connect():
    signals.attempt_recorded.connect(on_attempt, dispatch_uid="ops-metrics-attempt")
    signals.delivery_sent.connect(on_sent, dispatch_uid="ops-metrics-sent")
    signals.retry_scheduled.connect(on_retry, dispatch_uid="ops-metrics-retry")
    signals.fell_back.connect(on_fallback, dispatch_uid="ops-metrics-fallback")
    signals.dead_lettered.connect(on_dead_letter, dispatch_uid="ops-metrics-dead-letter")
    signals.rate_limited.connect(on_rate_limited, dispatch_uid="ops-metrics-rate-limited")


CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class StateCollector:
    """Shared state, read at scrape time: circuit breakers (Redis), queue depth per queue and
    priority lane (the broker), open WebSocket connections per ASGI process (Redis), the oldest
    waiting delivery per channel (Postgres). A source that cannot be read leaves its family empty."""

    def collect(self):
        from . import dashboard

        def circuits():
            for provider, state in dashboard.circuit_states().items():
                yield [provider], CIRCUIT_VALUES[state]

        def depths():
            for queue, lanes in dashboard.queue_depths().items():
                for lane, count in lanes.items():
                    yield [queue, lane], count

        def rows(mapping):
            return lambda: (([key], value) for key, value in mapping().items())

        yield gauge("notify_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", ["provider"],
                    circuits, "circuit states")
        yield gauge("notify_queue_depth", "Messages waiting on the broker.", ["queue", "lane"], depths, "queue depths")
        yield gauge("notify_ws_connections", "Open WebSocket connections per ASGI process's relay.", ["relay"],
                    rows(shared_state.ws_connections), "WebSocket connections")
        yield gauge("notify_oldest_waiting_delivery_seconds", "Age of the oldest queued delivery per channel.",
                    ["channel"], rows(dashboard.oldest_waiting), "oldest waiting delivery")


def gauge(name, documentation, labels, samples, what):
    """A gauge family of (label values, value) from `samples()`; empty, with a warning, when its
    source is unavailable."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    try:
        for label_values, value in samples():
            family.add_metric(label_values, value)
    except Exception as error:
        logger.warning("metrics: %s unavailable: %s", what, error)
    return family


def in_multiprocess_mode():
    return values.ValueClass is not values.MutexValue


LOCAL_METRICS = (DELIVERIES, SENT_LATENCY, CALL_DURATION, RETRIES, FALLBACKS, DEAD_LETTERS, RATE_LIMIT_WAITS,
                 RATE_LIMIT_WAIT_SECONDS, API_REQUESTS, API_LATENCY, WS_HANDSHAKES, WS_PUSHES)


class CountersCollector:
    """The counters of every process: the multiprocess files, plus this process's own when it was
    started without PROMETHEUS_MULTIPROC_DIR (its values then live in memory). Samples of the same
    series are summed, so a family appears once whichever way its values were kept."""

    def collect(self):
        sources = []
        if settings.PROMETHEUS_MULTIPROC_DIR:
            sources.append(multiprocess.MultiProcessCollector(None, path=settings.PROMETHEUS_MULTIPROC_DIR))
        if not in_multiprocess_mode():
            sources.extend(LOCAL_METRICS)
        families = {}
        for source in sources:
            for family in source.collect():
                merged = families.setdefault(family.name, (family, {}))[1]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if sample.name.endswith("_created"):
                        continue  # creation times do not add up; multiprocess mode leaves them out too
                    merged[key] = merged.get(key, 0.0) + sample.value
        for family, merged in families.values():
            family.samples = [Sample(name, dict(labels), value) for (name, labels), value in merged.items()]
            yield family


def registry():
    """Every process's counters plus the shared state, for one scrape."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(CountersCollector())
    scrape.register(StateCollector())
    return scrape


def allowed(request):
    """A bearer token (METRICS_TOKEN) when one is set, else a client address in METRICS_ALLOWED_NETWORKS."""
    if settings.METRICS_TOKEN:
        import hmac

        header = request.headers.get("Authorization", "")
        return hmac.compare_digest(header.encode(), f"Bearer {settings.METRICS_TOKEN}".encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    if not allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Counts every HTTP request by its URL pattern's name, method and status, with its latency."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The URL pattern's name (e.g. notification-list), never the path: ids would explode the labels.
        route = (match.view_name or match.route) if match is not None else "unmatched"
        if route != "metrics":
            API_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            API_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        return response


def start_worker_exporter(port, address="0.0.0.0"):
    """Serve this machine's multiprocess metrics from a worker's main process (no web process here)."""
    from prometheus_client import start_http_server

    exporter = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(exporter, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        exporter = REGISTRY
    try:
        start_http_server(port, addr=address, registry=exporter)
    except OSError as error:
        # Several workers of one machine share the multiprocess directory: the first to bind the
        # port serves them all.
        logger.info("worker metrics exporter not started on %s:%s (%s); another worker serves it", address, port,
                    error)
        return False
    logger.info("worker metrics exporter on %s:%s", address, port)
    return True


def serve_worker_metrics(**_kwargs):
    """Celery's worker_ready, in a worker's main process: NOTIFY_WORKER_METRICS_PORT serves this
    machine's metrics (for machines without a web process)."""
    if settings.NOTIFY_WORKER_METRICS_PORT:
        start_worker_exporter(settings.NOTIFY_WORKER_METRICS_PORT, settings.NOTIFY_WORKER_METRICS_ADDRESS)

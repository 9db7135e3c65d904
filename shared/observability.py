"""Prometheus metrics shared by all services (labelled by service, so embedded mode shares one registry)."""

from __future__ import annotations

import logging
import re
import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "crm_http_requests_total", "HTTP requests handled.", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "crm_http_request_duration_seconds", "HTTP request latency.", ["service", "method", "route"]
)
EVENTS_PUBLISHED = Counter("crm_events_published_total", "Outbox events published to the bus.", ["service"])
EVENTS_CONSUMED = Counter(
    "crm_events_consumed_total", "Events handled by consumers, by outcome.", ["consumer", "outcome"]
)
OUTBOX_REFUSED = Counter(
    "crm_outbox_refused_total",
    "Outbox events the bus refused for good, moved to outbox_dead (see `crm dlq`).",
    ["service"],
)
CONSUMER_WAITING = Gauge(
    "crm_consumer_waiting_for_upgrade",
    "1 while a consumer holds a partition at an event type or version newer than its build.",
    ["consumer", "topic", "partition"],
)
CONSUMER_RETRIES = Counter(
    "crm_consumer_retries_total",
    "Attempts a consumer repeated, by reason: outage (waited out), transient (serialization failure, "
    "deadlock, lock timeout; retried without limit) or failure (bounded, then dead-lettered).",
    ["consumer", "reason"],
)
CONSUMER_LAG = Histogram(
    "crm_consumer_event_lag_seconds",
    "Time from an event's creation to its effect being committed by a consumer.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BUS_UP = Gauge("crm_bus_up", "1 when the event bus answered the last probe, else 0 (degraded).", ["service"])


# Query parameters that carry a credential (`shared.web.routing`: a key in the URL for trackers).
SECRET_QUERY_PARAMETERS = ("key",)
_SECRET_IN_QUERY = re.compile(r"([?&](?:" + "|".join(SECRET_QUERY_PARAMETERS) + r")=)[^&#\s\"]*")


class RedactQuerySecrets(logging.Filter):
    """Masks credentials in the URLs a log record carries, e.g. uvicorn's access log line, which holds
    the path with its query string: `?key=crm_…` is logged as `?key=REDACTED`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_QUERY.sub(r"\1REDACTED", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_QUERY.sub(r"\1REDACTED", record.msg)
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # On the logger, not a handler: uvicorn replaces the access log's handlers when it starts, and keeps
    # the logger's filters.
    logging.getLogger("uvicorn.access").addFilter(RedactQuerySecrets())
    # aiokafka logs every reconnect attempt at ERROR; our own warnings already say the bus is away.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], template).observe(
                time.perf_counter() - started
            )

"""GET /metrics: Prometheus text for a scraper that bears METRICS_TOKEN.

Counters and histograms are summed over every process of this host (web and workers write
them to PROMETHEUS_MULTIPROC_DIR, agents.telemetry); the gauges are read now, once per
scrape: jobs by status (one grouped query), the LLM limiter, the broker's queue.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

import redis
from celery import current_app
from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from agents import leases, limiter, redisconn
from agents.models import Job, JobStatus

log = logging.getLogger(__name__)


class StateCollector:
    """Gauges of what the database and Redis hold at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
        jobs = GaugeMetricFamily("baton_jobs", "Jobs by status", labels=["status"])
        for status in JobStatus.values:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        try:
            slots = limiter.state()
            depth = queue_depth()
        except redis.RedisError:
            log.warning("/metrics: Redis unavailable, limiter and queue left out", exc_info=True)
            return
        yield GaugeMetricFamily(
            "baton_llm_limiter_in_flight", "LLM calls holding a limiter slot", value=slots.in_flight
        )
        yield GaugeMetricFamily(
            "baton_llm_limiter_waiting", "Callers waiting for a limiter slot", value=slots.waiting
        )
        yield GaugeMetricFamily(
            "baton_llm_limiter_cap", "LLM calls allowed in flight at once", value=slots.cap
        )
        if depth is not None:
            queue, length = depth
            family = GaugeMetricFamily(
                "baton_queue_depth", "Messages waiting in the broker's queue", labels=["queue"]
            )
            family.add_metric([queue], length)
            yield family


def queue_depth() -> tuple[str, int] | None:
    """(queue, messages waiting) of Celery's default queue: a Redis list, or RabbitMQ's count.
    None standalone (the in-memory broker's queue lives in the process that serves it) and
    when RabbitMQ does not answer."""
    if not settings.REDIS_URL:
        return None
    queue = current_app.conf.task_default_queue
    if not leases.broker_is_redis():
        try:
            with current_app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)  # a scrape does not wait for a restart
                # A passive declare changes nothing and answers with the count.
                ok = conn.default_channel.queue_declare(queue, passive=True)
                return queue, ok.message_count
        except Exception:
            log.warning("/metrics: the broker's queue depth left out", exc_info=True)
            return None
    return queue, redisconn.redis_client(settings.REDIS_URL).llen(queue)


def _authorized(request: HttpRequest) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("No METRICS_TOKEN is set: metrics are not served.")
    if not _authorized(request):
        response = HttpResponse("A valid bearer token is required.\n", status=401)
        response["Content-Type"] = "text/plain; charset=utf-8"
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

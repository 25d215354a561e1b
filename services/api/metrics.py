"""GET /metrics for Prometheus: request latency histograms by route (prometheus-fastapi-instrumentator),
and, read from the database at each scrape, jobs by status, the queue's depth and the workers' heartbeats.
Aggregates only, no owner or job ids, so it is served without a key (as Prometheus scrapes)."""
import logging

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_fastapi_instrumentator import Instrumentator

from services.store import jobs, workers
from services.store.db import session_scope
from services.store.models import STATUSES

log = logging.getLogger(__name__)


class ServiceCollector:
    def __init__(self, settings):
        self.settings = settings

    def collect(self):
        try:
            with session_scope() as session:
                counts = jobs.count_jobs_by_status(session)
                live = workers.count_live(session, self.settings.STALE_AFTER_SECONDS)
        except Exception:
            log.warning("metrics: the database did not answer", exc_info=True)
            return
        by_status = GaugeMetricFamily("mgs_jobs", "jobs by status", labels=["status"])
        for status in STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily("mgs_queue_depth", "jobs waiting for a worker (queued)",
                                value=counts.get("queued", 0))
        yield GaugeMetricFamily("mgs_workers_live", "workers that beat within STALE_AFTER_SECONDS", value=len(live))
        beats = GaugeMetricFamily("mgs_worker_last_heartbeat_timestamp_seconds",
                                  "the last heartbeat of each live worker (Unix time)", labels=["worker"])
        for name, heartbeat_at in live:
            beats.add_metric([name], heartbeat_at.timestamp())
        yield beats


def instrument(app, settings) -> None:
    registry = CollectorRegistry()  # one per app: tests make many apps in one process
    registry.register(ServiceCollector(settings))
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, include_in_schema=False)

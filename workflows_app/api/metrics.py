"""/metrics for Prometheus: every figure is read from the database and Redis at scrape time,
through ``selectors`` / ``operations`` (the reads every face shares; no ORM query here).

No in-process counters (they would disagree between web processes and vanish on restart): a
custom collector queries the source of truth on each scrape.

- ``nexus_executions{status}``: executions by status (gauge; they move between statuses).
- ``nexus_step_duration_seconds{step_type}``: histogram of finished step runs.
- ``nexus_queue_messages{queue,state}`` / ``nexus_queue_oldest_message_age_seconds{queue}``: the
  named message queues (from ``workflow_queue_status``).
- ``nexus_broker_queue_length{queue}``: Celery's Redis lists (all priority levels).
- ``nexus_dead_letters{status,error_class}``.
- ``nexus_<figure>``: the registry's figures, as gauges (e.g. ``nexus_trades_executed``: orders filled
  or partly filled, counted from the current rows - a figure that can go down, so not a Prometheus
  counter), plus the collectors listed in ``settings.NEXUS_METRICS_COLLECTORS`` (orders by status).
- ``nexus_scrape_error{part}``: 1 when a part could not be read (the rest is still served).

Access: token or session authentication, staff only (Prometheus: ``authorization: {type: Token,
credentials: <token>}``).
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from workflows_app import operations, selectors
from workflows_app.circuit import redis_client
from workflows_app.registry import registry

logger = logging.getLogger("nexus.metrics")

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
PRIORITY_SEP = "\x06\x16"



def _clean(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.lower())


class NexusCollector:
    def __init__(self):
        self.errors: dict[str, int] = {}

    def collect(self):
        self.errors = {}
        for part in (self.executions, self.step_durations, self.queues, self.broker_queues, self.dead_letters,
                     self.counters):
            try:
                yield from part()
            except Exception:  # noqa: BLE001 - one broken part must not hide the others
                logger.exception("metrics: %s failed", part.__name__)
                self.errors[part.__name__] = 1
        for path in getattr(settings, "NEXUS_METRICS_COLLECTORS", []):
            try:
                yield from import_string(path)().collect()
            except Exception:  # noqa: BLE001
                logger.exception("metrics: %s failed", path)
                self.errors[path.rsplit(".", 1)[-1]] = 1
        failed = GaugeMetricFamily("nexus_scrape_error", "1 when a part of the scrape failed", labels=["part"])
        for part, value in self.errors.items():
            failed.add_metric([part], value)
        yield failed

    def executions(self):
        family = GaugeMetricFamily("nexus_executions", "Executions by status", labels=["status"])
        for status, n in selectors.executions_by_status().items():
            family.add_metric([status], n)
        yield family

    def step_durations(self):
        family = HistogramMetricFamily("nexus_step_duration_seconds", "Duration of finished step runs",
                                       labels=["step_type"])
        for row in selectors.step_duration_histogram(STEP_BUCKETS):
            buckets = [(str(bound), n) for bound, n in row["buckets"]] + [("+Inf", row["total"])]
            family.add_metric([row["step_type"]], buckets, row["seconds"])
        yield family

    def queues(self):
        status_fn = getattr(operations, "workflow_queue_status", None)
        if status_fn is None:
            return
        reply = status_fn(user=None)
        messages = GaugeMetricFamily("nexus_queue_messages", "Messages in the named queues",
                                     labels=["queue", "state"])
        oldest = GaugeMetricFamily("nexus_queue_oldest_message_age_seconds", "Age of the oldest message",
                                   labels=["queue"])
        for queue in reply.get("queues", []):
            name = str(queue.get("name", ""))
            for state, key in (("available", "messages_available"), ("in_flight", "messages_in_flight"),
                               ("dead_lettered", "dead_lettered")):
                value = queue.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    messages.add_metric([name, state], value)
            age = queue.get("oldest_message_age")
            if isinstance(age, int | float) and not isinstance(age, bool):
                oldest.add_metric([name], age)
        yield messages
        yield oldest

    def broker_queues(self):
        names = sorted(set(getattr(settings, "NEXUS_QUEUES", [])) | set(selectors.agent_queues()))
        steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("priority_steps") or [0]
        family = GaugeMetricFamily("nexus_broker_queue_length", "Celery tasks waiting in the broker",
                                   labels=["queue"])
        for name, n in selectors.broker_queue_lengths(names, steps, PRIORITY_SEP, redis_client()).items():
            family.add_metric([name], n)
        yield family

    def dead_letters(self):
        family = GaugeMetricFamily("nexus_dead_letters", "Dead letters by status and error class",
                                   labels=["status", "error_class"])
        for row in selectors.dead_letter_counts():
            family.add_metric([row["status"], row["error_class"]], row["n"])
        yield family

    def counters(self):
        for name, fn in sorted(registry.counters.items()):
            try:
                value = fn(None)
            except Exception:  # noqa: BLE001
                logger.exception("metrics: counter %s failed", name)
                self.errors[f"counter:{name}"] = 1
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                # A gauge: the figure is recomputed from current rows / Redis at each scrape and may go
                # down (an order leaving "filled", a flushed cache counter); a counter must never.
                yield GaugeMetricFamily(f"nexus_{_clean(name)}", f"Registry figure {name} (current value, all time)",
                                        value=value)


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NexusCollector())
    return generate_latest(registry)


class MetricsView(APIView):
    permission_classes = [IsAdminUser]
    renderer_classes = [JSONRenderer]  # for errors; the metrics themselves are plain text
    throttle_classes: list = []
    schema = None  # not part of the REST API's OpenAPI document

    def get(self, request):
        return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


metrics_view = MetricsView.as_view()

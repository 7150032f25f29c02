"""Trading figures for /metrics (Prometheus), read from the database at scrape time.

Listed in settings ``NEXUS_METRICS_COLLECTORS``; the engine's /metrics view instantiates it
(the engine never imports trading_app). Every family here is a gauge: it is recomputed from the
current rows at each scrape. ``nexus_trades_executed`` (the ``trades_executed`` registry figure) is
exported by the engine as a gauge too: it counts current rows, so it could go down, which a
Prometheus counter must never do.
"""
from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from trading_app import killswitch
from trading_app.models import Order


class OrdersCollector:
    def collect(self):
        family = GaugeMetricFamily("nexus_orders", "Orders by status, side and broker",
                                   labels=["status", "side", "broker"])
        for row in Order.objects.values("status", "side", "broker").annotate(n=Count("id")).order_by():
            family.add_metric([row["status"], row["side"], row["broker"]], row["n"])
        yield family
        yield GaugeMetricFamily("nexus_kill_switch_active", "1 while the kill switch stops new orders",
                                value=1 if killswitch.kill_switch_state()["active"] else 0)

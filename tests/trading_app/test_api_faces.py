"""Trading endpoints through the engine's REST face: parser, throttle, error body, /metrics."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.support.api import API, assert_error
from workflows_app.errors import OperationError

pytestmark = pytest.mark.django_db


def test_trading_endpoints_share_parser_throttle_and_error_body(api_a, api_staff, staff, settings):
    assert api_a.get(f"{API}/trading/account/").json()["success"] is True
    assert api_a.get(f"{API}/trading/positions/").json()["success"] is True
    assert api_a.get(f"{API}/trading/kill-switch/").json()["kill_switch"]["active"] is False
    assert_error(api_a.post(f"{API}/trading/kill-switch/", {"active": "x"}), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(api_a.get(f"{API}/trading/orders/?limit=abc"), 400, "INVALID_INPUT_DATA")
    on = api_staff.post(f"{API}/trading/kill-switch/", {"active": True, "reason": "test"}, format="json")
    assert on.status_code == 200 and on.json()["kill_switch"]["active"] is True
    settings.NEXUS_API_WRITE_RATE = "1/min"
    cache.delete(f"throttle_writes_{staff.pk}")
    try:
        api_staff.post(f"{API}/trading/kill-switch/", {"active": False}, format="json")
        assert_error(api_staff.post(f"{API}/trading/kill-switch/", {"active": False}, format="json"), 429, "THROTTLED")
    finally:
        cache.delete(f"throttle_writes_{staff.pk}")


def test_broker_unavailable_is_503(api_a, monkeypatch):
    from trading_app import operations as trading_operations

    def down(**kwargs):
        raise OperationError("BROKER_UNAVAILABLE", "broker timed out", {"error_class": "timeout"})

    monkeypatch.setattr(trading_operations, "trading_account", down)
    assert_error(api_a.get(f"{API}/trading/account/"), 503, "BROKER_UNAVAILABLE")


def test_trading_figures_in_prometheus_metrics(api_staff):
    text = api_staff.get("/metrics").content.decode()
    for family in ("nexus_orders", "nexus_kill_switch_active", "nexus_trades_executed"):
        assert f"# TYPE {family} " in text, family
    assert "nexus_kill_switch_active 0.0" in text
    assert "nexus_scrape_error{" not in text

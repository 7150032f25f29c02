"""Why a trigger did not fire: workflow_status (and so REST, MCP and the CLI) shows per trigger and
symbol the last measured value against its threshold, whether it holds, the cooldown left, the
last evaluation and firing - recorded by the evaluation without an extra Redis round trip."""
from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from tests.support.waiting import wait_for
from trading_app import pollers as market
from trading_app.providers.simulated import SimulatedMarketData, inject_jump
from workflows_app import operations, queues
from workflows_app.models import Execution
from workflows_app.services import triggers as engine

pytestmark = pytest.mark.django_db(transaction=True)
START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean(redis_test_client):
    queues.ensure_default_queues()
    engine.reset_state()
    yield


class CountingRedis:
    """The real client, counting the commands the evaluation sends."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if callable(attr):
            def call(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)
            return call
        return attr


def _states(workflow_id) -> dict:
    reply = operations.workflow_status(workflow_id=workflow_id)
    return {(t["type"], t.get("symbol")): t for t in reply["triggers"]}


def test_status_shows_measured_value_threshold_cooldown_and_firing(celery_worker, redis_test_client, alice):
    name = f"state-{uuid.uuid4().hex[:6]}"
    workflow_id = operations.workflow_create(name=name, steps=[{"name": "s", "type": "test_noop"}], triggers=[
        {"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any", "window": "1h",
         "cooldown": 600},
        {"type": "price_change", "symbol": "MSFT", "threshold": 0.05, "direction": "up"},
        {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"},
    ])["workflow_id"]
    before = _states(workflow_id)
    aapl = before[("price_change", "AAPL")]["state"]
    assert aapl["value"] is None and aapl["last_evaluated_at"] is None and aapl["cooldown_remaining"] == 0
    assert "state" not in before[("schedule", None)] and before[("schedule", None)]["next_run_at"]

    quiet = SimulatedMarketData().ticks("AAPL", count=60, start=START, interval=1.0)
    engine.evaluate([market.tick_event(quiet[0])], client=redis_test_client)  # the new workflow: index rebuilt
    counting = CountingRedis(redis_test_client)
    engine.evaluate([market.tick_event(t) for t in quiet[1:]], client=counting)
    # One batch: one pipeline reading the index version with the states, one writing the states -
    # recording what was measured added no round trip.
    assert counting.calls == ["pipeline", "pipeline"], counting.calls
    aapl = _states(workflow_id)[("price_change", "AAPL")]["state"]
    assert aapl["threshold"] == 0.02 and 0 <= aapl["value"] < 0.02 and aapl["holds"] is False
    assert aapl["measured"]["price"] == pytest.approx(quiet[-1]["price"])
    assert aapl["last_evaluated_at"].startswith(quiet[-1]["timestamp"][:19])
    msft = _states(workflow_id)[("price_change", "MSFT")]["state"]
    assert msft["value"] is None and msft["last_evaluated_at"] is None  # no MSFT tick seen yet

    inject_jump("AAPL", 0.04, at=START + timedelta(seconds=90))
    moved = SimulatedMarketData().ticks("AAPL", count=60, start=START + timedelta(seconds=60), interval=1.0)
    engine.evaluate([market.tick_event(t) for t in moved])
    wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).exists(), timeout=120, message="firing")
    fired = _states(workflow_id)[("price_change", "AAPL")]
    assert fired["last_fired_at"] is not None
    state = fired["state"]
    assert state["holds"] is True and state["value"] >= 0.02 and state["holding"] is True
    assert 0 < state["cooldown_remaining"] <= 600

    out = io.StringIO()
    call_command("workflow_status", name, stdout=out)
    text = out.getvalue()
    assert "trigger price_change AAPL: measured" in text and "vs threshold 0.02 (holds)" in text
    assert "cooldown" in text and "trigger price_change MSFT: " in text and "last evaluated never" in text
    assert "trigger schedule: last fired -, next run 20" in text

    # The admin's workflow page and the workflow page show the same states.
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    page = admin.get(f"/admin/workflows_app/workflow/{workflow_id}/change/")
    assert page.status_code == 200 and b'data-testid="trigger-states"' in page.content
    assert b'data-symbol="AAPL" data-holds="true"' in page.content and b'data-symbol="MSFT"' in page.content
    view = admin.get(f"/ui/workflows/{workflow_id}/")
    assert view.status_code == 200 and b'data-holds="true"' in view.content and b"trigger-chart" in view.content
    outsider = Client()
    outsider.force_login(alice)
    assert outsider.get(f"/ui/workflows/{workflow_id}/").status_code == 404  # not hers (owner-less, she is not staff)

"""REST API: named queues, the signed webhook, manual events, dead-letter processing."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from rest_framework.test import APIClient

from tests.support.api import API, assert_error

pytestmark = pytest.mark.django_db(transaction=True)  # accepted messages reach Redis on commit

SECRET = "whsec-test-5f1c0a"


def queue_name() -> str:
    return f"api-q-{uuid.uuid4().hex[:8]}"


def test_queue_writes_are_staff_only_reads_are_not(api_a, api_staff, redis_test_client):
    name = queue_name()
    assert_error(api_a.post(f"{API}/queues/", {"name": name}, format="json"), 403, "PERMISSION_DENIED")
    assert api_staff.post(f"{API}/queues/", {"name": name}, format="json").status_code == 200
    for path, body in (("messages/", {"message": 1}), ("receive/", {}), ("ack/", {"message_ids": ["1-0"]})):
        assert_error(api_a.post(f"{API}/queues/{name}/{path}", body, format="json"), 403, "PERMISSION_DENIED")
    assert api_a.get(f"{API}/queues/{name}/").status_code == 200
    assert api_a.get(f"{API}/queues/").status_code == 200


def test_queue_config_send_status_receive_ack(api_staff, redis_test_client):
    api_a = api_staff
    name = queue_name()
    config = {"name": name, "max_retries": 3, "visibility_timeout": 30, "message_retention": 86400,
              "batch_size": 10, "ordering": "FIFO", "deduplication": True}
    created = api_a.post(f"{API}/queues/", config, format="json")
    assert created.status_code == 200, created.content
    assert created.json()["queue"]["batch_size"] == 10

    sent = api_a.post(f"{API}/queues/{name}/messages/", {"message": {"type": "trade_signal", "symbol": "AAPL"},
                                                         "group_id": "AAPL", "deduplication_id": "sig-1"},
                      format="json")
    assert sent.status_code == 201, sent.content
    again = api_a.post(f"{API}/queues/{name}/messages/", {"message": {"type": "trade_signal"},
                                                          "deduplication_id": "sig-1"}, format="json")
    assert again.json()["deduplicated"] is True
    api_a.post(f"{API}/queues/{name}/messages/", {"message": "risk", "group_id": "MSFT"}, format="json")

    # the spec's call: workflow_queue_status(include_messages=True)
    status = api_a.get(f"{API}/queues/?include_messages=true").json()
    assert status["success"] and "total_messages" in status and "processing_rate" in status
    mine = next(q for q in status["queues"] if q["name"] == name)
    assert mine["messages_available"] == 2 and mine["messages_in_flight"] == 0
    one = api_a.get(f"{API}/queues/{name}/").json()
    assert [q["name"] for q in one["queues"]] == [name]
    listed = api_a.get(f"{API}/queues/{name}/messages/").json()
    assert len(listed["queues"][0]["messages"]) == 2

    received = api_a.post(f"{API}/queues/{name}/receive/", {"max_messages": 5}, format="json").json()
    assert received["count"] == 2
    in_flight = api_a.get(f"{API}/queues/{name}/").json()["queues"][0]
    assert in_flight["messages_in_flight"] == 2 and in_flight["messages_available"] == 0
    ids = [m["message_id"] if "message_id" in m else m["id"] for m in received["messages"]]
    acked = api_a.post(f"{API}/queues/{name}/ack/", {"message_ids": ids}, format="json").json()
    assert acked["acknowledged"] == 2
    assert api_a.get(f"{API}/queues/{name}/").json()["queues"][0]["messages_in_flight"] == 0


def test_queue_errors(api_staff, redis_test_client):
    api_a = api_staff
    assert_error(api_a.get(f"{API}/queues/no-such-queue/"), 404, "QUEUE_NOT_FOUND")
    assert_error(api_a.post(f"{API}/queues/no-such-queue/messages/", {"message": 1}, format="json"), 404,
                 "QUEUE_NOT_FOUND")
    assert_error(api_a.post(f"{API}/queues/x/messages/", {"group_id": "g"}, format="json"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.post(f"{API}/queues/", {"name": "bad name!"}, format="json"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.post(f"{API}/queues/", {"name": "q", "ordering": "LIFO"}, format="json"), 400)
    name = queue_name()
    api_a.post(f"{API}/queues/", {"name": name, "max_messages": 1, "deduplication": False}, format="json")
    assert api_a.post(f"{API}/queues/{name}/messages/", {"message": 1}, format="json").status_code == 201
    response = api_a.post(f"{API}/queues/{name}/messages/", {"message": 2}, format="json")
    assert_error(response, 429, "QUEUE_FULL")


def _signed(body: bytes, *, secret: str = SECRET, ts: int | None = None, source: str = "tradingview") -> dict:
    from workflows_app.services.events import sign

    ts = int(time.time()) if ts is None else ts
    return {"HTTP_X_NEXUS_SOURCE": source, "HTTP_X_NEXUS_TIMESTAMP": str(ts),
            "HTTP_X_NEXUS_SIGNATURE": sign(secret, ts, body)}


def test_signed_webhook_needs_no_user_but_a_valid_signature(settings, default_queues, caplog):
    settings.NEXUS_WEBHOOK_SECRETS = {"tradingview": SECRET}
    client = APIClient()
    body = json.dumps({"event": "price_alert", "id": uuid.uuid4().hex, "symbol": "AAPL", "price": 231.5}).encode()
    accepted = client.generic("POST", f"{API}/events/", body, content_type="application/json", **_signed(body))
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["success"] and accepted.json()["queue"] == "events"
    assert SECRET not in accepted.content.decode()

    replay = client.generic("POST", f"{API}/events/", body, content_type="application/json", **_signed(body))
    assert replay.status_code in (202, 403)  # same second: the same signature is refused as a replay
    if replay.status_code == 403:
        assert assert_error(replay, 403, "PERMISSION_DENIED")["details"]["reason"] == "replayed"

    forged = client.generic("POST", f"{API}/events/", body, content_type="application/json",
                            **_signed(body, secret="wrong"))
    assert assert_error(forged, 403, "PERMISSION_DENIED")["details"]["reason"] == "bad_signature"
    stale = client.generic("POST", f"{API}/events/", body, content_type="application/json",
                           **_signed(body, ts=int(time.time()) - 3600))
    assert assert_error(stale, 403, "PERMISSION_DENIED")["details"]["reason"] == "stale"
    unknown = client.generic("POST", f"{API}/events/", body, content_type="application/json",
                             **_signed(body, source="nobody"))
    assert_error(unknown, 403, "PERMISSION_DENIED")
    missing = client.generic("POST", f"{API}/events/", body, content_type="application/json")
    assert_error(missing, 400 if missing.status_code == 400 else 403)
    not_json = b"\xff not json"
    bad = client.generic("POST", f"{API}/events/", not_json, content_type="application/json", **_signed(not_json))
    assert_error(bad, 400, "INVALID_INPUT_DATA")
    assert SECRET not in caplog.text


def test_manual_events_are_staff_only(api_a, api_staff, default_queues):
    event = {"kind": "market", "payload": {"type": "price_change", "symbol": "AAPL", "change": 0.03},
             "event_id": uuid.uuid4().hex}
    assert_error(api_a.post(f"{API}/events/manual/", event, format="json"), 403, "PERMISSION_DENIED")
    reply = api_staff.post(f"{API}/events/manual/", event, format="json")
    assert reply.status_code == 202, reply.content
    assert reply.json()["event_id"] == event["event_id"]


def test_processing_dead_letters_is_staff_only(api_a, api_staff, redis_test_client):
    assert_error(api_a.post(f"{API}/dead-letters/process/", {}, format="json"), 403, "PERMISSION_DENIED")
    reply = api_staff.post(f"{API}/dead-letters/process/", {"limit": 10}, format="json")
    assert reply.status_code == 200, reply.content
    assert reply.json()["success"] is True

"""Worker and web processes refresh their ProcessHeartbeat row (availability, services/availability.py).

Worker: on Celery's own ``worker-heartbeat`` (every 2 s, sent from the consumer's timer only while
the consumer is connected to the broker), at most every HEARTBEAT_EVERY seconds: a worker that lost
Redis or whose main loop is stuck stops refreshing and goes stale. A clean shutdown deletes the row.
Web: a daemon thread started by the WSGI/ASGI module (runserver, gunicorn, uvicorn): the process is
alive and reaches the database.
"""
from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time

from celery.signals import heartbeat_sent, worker_ready, worker_shutdown
from django.db import DatabaseError, close_old_connections

from workflows_app.services import availability

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 5.0
_worker: dict = {"consumer": None, "name": None, "at": 0.0}


@worker_ready.connect(dispatch_uid="nexus-worker-heartbeat-ready")
def _worker_ready(sender=None, **kwargs):
    _worker.update(consumer=sender, name=f"worker:{getattr(sender, 'hostname', socket.gethostname())}:{os.getpid()}",
                   at=0.0)


def _queues(consumer) -> list[str]:
    try:
        return [q.name for q in consumer.task_consumer.queues]
    except AttributeError:  # consumer restarting: no task consumer at this instant
        return []


@heartbeat_sent.connect(dispatch_uid="nexus-worker-heartbeat")
def _worker_heartbeat(sender=None, **kwargs):
    consumer, now = _worker["consumer"], time.monotonic()
    if consumer is None or now - _worker["at"] < HEARTBEAT_EVERY:
        return
    try:
        availability.record_heartbeat(name=_worker["name"], role="worker", queues=_queues(consumer))
    except DatabaseError as exc:  # the database is down: availability will show it
        log.warning("cannot record the worker's heartbeat: %s", exc)
        close_old_connections()
        return
    _worker["at"] = now


@worker_shutdown.connect(dispatch_uid="nexus-worker-heartbeat-shutdown")
def _worker_shutdown(sender=None, **kwargs):
    if not _worker["name"]:
        return
    try:
        availability.forget_heartbeat(_worker["name"])
    except DatabaseError:
        pass  # goes stale on its own


_web_started = threading.Lock()
_web_thread: threading.Thread | None = None


def start_web_heartbeat() -> None:
    """Call once from the WSGI/ASGI module; idempotent."""
    global _web_thread
    with _web_started:
        if _web_thread is not None:
            return
        _web_thread = threading.Thread(target=_web_loop, name="nexus-web-heartbeat", daemon=True)
        _web_thread.start()
        atexit.register(_web_forget)


def _web_name() -> str:
    return f"web:{socket.gethostname()}:{os.getpid()}"


def _web_loop() -> None:
    while True:
        try:
            availability.record_heartbeat(name=_web_name(), role="web")
        except DatabaseError as exc:
            log.warning("cannot record the web process's heartbeat: %s", exc)
            close_old_connections()
        time.sleep(HEARTBEAT_EVERY)


def _web_forget() -> None:
    try:
        availability.forget_heartbeat(_web_name())
    except DatabaseError:
        pass

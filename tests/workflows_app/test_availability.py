"""Availability (issue 12 item 6): samples of which processes were alive, taken by beat, turned into
`uptime` ("99.97%") over the window. Driven clocks for the arithmetic; real worker and beat processes
stopped and started for the gap."""
from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.processes import ProcessGroup
from tests.support.waiting import wait_for
from tests.workflows_app.recovery_support import process_env
from workflows_app import operations, selectors
from workflows_app.models import AvailabilitySample, ProcessHeartbeat
from workflows_app.services import availability

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2031, 1, 6, 9, 0, tzinfo=UTC)  # far from the wall clock: no real heartbeat is fresh then


def beat_everything(now, *, worker=True, beat=True, web=True):
    if worker:
        availability.record_heartbeat(name="worker:a", role="worker", queues=["workflows", "events"], now=now)
    if beat:
        availability.record_heartbeat(name="beat:a", role="beat", now=now)
    if web:
        availability.record_heartbeat(name="web:a", role="web", now=now)


def run_clock(seconds: int, *, worker_down=(None, None), killed_at=None, sample_gap=(None, None)):
    """Every 10 s from T0: processes refresh their heartbeats, then beat samples."""
    for offset in range(0, seconds + 1, 10):
        now = T0 + timedelta(seconds=offset)
        stopped = worker_down[0] is not None and worker_down[0] <= offset < worker_down[1]
        if stopped and offset == worker_down[0]:
            availability.forget_heartbeat("worker:a")  # a clean stop deletes its row at once
        killed = killed_at is not None and offset > killed_at and (worker_down[1] is None or offset < worker_down[1])
        beat_everything(now, worker=not stopped and not killed)
        if sample_gap[0] is not None and sample_gap[0] <= offset < sample_gap[1]:
            continue  # beat (the sampler) is down: no sample
        availability.sample_if_due(now)


def test_a_worker_stopped_for_a_minute_out_of_five_is_80_percent():
    run_clock(300, worker_down=(60, 120))
    figure = selectors.availability(T0 - timedelta(hours=24), now=T0 + timedelta(seconds=300))
    assert figure["samples"] == 31
    assert figure["percent"] == 80.0 and selectors.uptime_label(figure) == "80.00%"
    assert figure["unavailable_seconds"] == 60.0 and figure["observed_seconds"] == 300.0
    assert figure["down_by_role"] == {"worker": 60.0}
    assert figure["since"] == T0.isoformat()  # from the first sample, not from the window's start
    down = AvailabilitySample.objects.filter(available=False)
    assert [s.taken_at for s in down] == [T0 + timedelta(seconds=s) for s in range(60, 120, 10)]
    assert all(s.down == ["worker"] and not s.workers_ok and s.beat_ok and s.web_ok for s in down)


def test_a_killed_worker_counts_as_down_once_its_heartbeat_is_stale():
    run_clock(300, killed_at=60, worker_down=(None, 180))  # last heartbeat at 60 s, back at 180 s
    figure = selectors.availability(T0, now=T0 + timedelta(seconds=300))
    # fresh means younger than NEXUS_HEARTBEAT_STALE_AFTER (30 s): down from 90 s to 180 s
    assert figure["unavailable_seconds"] == 90.0 and figure["percent"] == 70.0


def test_no_sample_means_no_figure_and_a_gap_in_sampling_counts_as_down():
    empty = selectors.availability(T0, now=T0 + timedelta(hours=1))
    assert empty["percent"] is None and selectors.uptime_label(empty) is None and "no availability samples" in empty["reason"]
    run_clock(400, sample_gap=(100, 200))  # beat silent 100 s: the last sample covers max_gap (30 s) of it
    figure = selectors.availability(T0, now=T0 + timedelta(seconds=400))
    assert figure["max_gap"] == 30.0
    # the last sample before the gap (90 s) covers up to 120 s; 120 s to 200 s is unobserved
    assert figure["unobserved_seconds"] == 80.0 and figure["unavailable_seconds"] == 80.0
    assert figure["percent"] == 80.0


def test_the_window_starts_where_asked_and_99_999_is_never_rounded_to_100():
    step, total = 25, 1_000_000  # one 25 s outage in a million seconds: 99.9975 %
    AvailabilitySample.objects.bulk_create(
        AvailabilitySample(taken_at=T0 + timedelta(seconds=t), available=t != 500_000, workers_ok=t != 500_000,
                           beat_ok=True, web_ok=True, down=["worker"] if t == 500_000 else [])
        for t in range(0, total + 1, step))
    figure = selectors.availability(T0, now=T0 + timedelta(seconds=total))
    assert figure["unavailable_seconds"] == 25.0
    assert figure["percent"] == 99.99 and selectors.uptime_label(figure) == "99.99%"
    later = selectors.availability(T0 + timedelta(seconds=600_000), now=T0 + timedelta(seconds=total))
    assert later["since"] == (T0 + timedelta(seconds=600_000)).isoformat() and later["percent"] == 100.0


def test_beat_stand_by_or_without_redis_is_not_available_and_web_can_be_left_out(settings):
    beat_everything(T0, beat=False)
    availability.record_heartbeat(name="beat:b", role="beat", state="standby", now=T0)
    availability.record_heartbeat(name="beat:c", role="beat", state="degraded", detail="cannot reach Redis", now=T0)
    assert availability.take_sample(T0).down == ["beat"]
    availability.record_heartbeat(name="worker:q", role="worker", queues=["maintenance"], now=T0)
    availability.forget_heartbeat("worker:a")
    assert availability.liveness(T0)["down"] == ["worker", "beat"]  # a maintenance-only worker runs no workflow
    settings.NEXUS_AVAILABILITY_REQUIRES = ["worker"]
    ProcessHeartbeat.objects.filter(name="web:a").delete()
    beat_everything(T0, beat=False, web=False)
    assert availability.liveness(T0)["available"] is True
    settings.NEXUS_AVAILABILITY_REQUIRES = ["wroker"]
    with pytest.raises(ValueError, match="NEXUS_AVAILABILITY_REQUIRES"):
        availability.liveness(T0)


def test_one_sample_per_period_and_old_samples_are_pruned(settings):
    beat_everything(T0)
    assert availability.sample_if_due(T0) is not None
    assert availability.sample_if_due(T0 + timedelta(seconds=5)) is None  # a second beat's tick: skipped
    assert availability.sample_if_due(T0 + timedelta(seconds=10)) is not None
    settings.NEXUS_AVAILABILITY_RETENTION_DAYS = 1
    assert availability.prune(T0 + timedelta(days=1, seconds=5)) == 1
    assert list(AvailabilitySample.objects.values_list("taken_at", flat=True)) == [T0 + timedelta(seconds=10)]


def test_workflow_metrics_reports_uptime_and_uptime_seconds_separately():
    now = datetime.now(UTC)
    for offset in range(-600, 1, 10):  # the last 10 minutes, the worker gone from -300 s to -240 s
        down = -300 <= offset < -240
        AvailabilitySample.objects.create(taken_at=now + timedelta(seconds=offset), available=not down,
                                          workers_ok=not down, beat_ok=True, web_ok=True,
                                          down=["worker"] if down else [])
    system = operations.workflow_metrics(window="1h")["system"]
    figure = system["availability"]
    assert figure["unavailable_seconds"] == 60.0 and figure["since"] == (now - timedelta(seconds=600)).isoformat()
    assert 89.9 < figure["percent"] < 90.01 and system["uptime"] == f"{figure['percent']:.2f}%"
    assert "uptime_seconds" in system  # the worker's own uptime, a different figure (None if none answers)


def test_a_real_worker_stopped_and_started_shows_the_gap(own_redis, beats, worker_process, monkeypatch, settings):
    """Beat samples every second; a worker consuming `workflows` is stopped, then a new one started."""
    monkeypatch.setenv("NEXUS_AVAILABILITY_SAMPLE_EVERY", "1")
    monkeypatch.setenv("NEXUS_AVAILABILITY_REQUIRES", "worker,beat")  # no web process in this test
    # a queue of this test's own: an in-process test worker left running by other tests consumes `workflows`
    monkeypatch.setenv("NEXUS_AVAILABILITY_WORK_QUEUE", "availability-test")
    settings.NEXUS_AVAILABILITY_SAMPLE_EVERY = 1.0
    worker = worker_process(queues="availability-test,workflows")
    beats(own_redis.url)

    def latest(available: bool, after=None):
        qs = AvailabilitySample.objects.filter(available=available)
        if after is not None:
            qs = qs.filter(taken_at__gt=after)
        return qs.order_by("taken_at").first()

    first_up = wait_for(lambda: latest(True), timeout=90, message="an available sample (worker and beat alive)")
    assert first_up.workers_ok and first_up.beat_ok and first_up.workers
    worker.stop()  # SIGTERM: a clean stop forgets its heartbeat at once
    assert not ProcessHeartbeat.objects.filter(role="worker", name__in=first_up.workers).exists()
    first_down = wait_for(lambda: latest(False, first_up.taken_at), timeout=60, message="a sample with no worker")
    assert first_down.down == ["worker"] and first_down.beat_ok
    worker_process(queues="availability-test,workflows")
    back_up = wait_for(lambda: latest(True, first_down.taken_at), timeout=90, message="an available sample again")
    figure = selectors.availability(first_up.taken_at, now=back_up.taken_at)
    gap = (back_up.taken_at - first_down.taken_at).total_seconds()
    assert figure["unavailable_seconds"] == pytest.approx(gap, abs=0.01)
    assert figure["down_by_role"].get("worker", 0) > 0 and 0 < figure["percent"] < 100
    assert figure["observed_seconds"] == pytest.approx((back_up.taken_at - first_up.taken_at).total_seconds(), abs=0.01)


def test_a_web_process_keeps_its_heartbeat_and_a_killed_one_goes_stale(own_redis):
    """The WSGI module starts the web's heartbeat (runserver and gunicorn both load it)."""
    web = ProcessGroup([sys.executable, "-c", "import time, nexus_project.wsgi; time.sleep(300)"],
                       env=process_env(own_redis.url)).start()
    try:
        row = wait_for(lambda: ProcessHeartbeat.objects.filter(role="web", pid=web.pid).first(), timeout=60,
                       message="the web process's heartbeat")
        assert row.state == "active" and availability.liveness(row.last_seen)["web_ok"]
        refreshed = wait_for(lambda: ProcessHeartbeat.objects.filter(pk=row.pk, last_seen__gt=row.last_seen).first(),
                             timeout=60, message="the heartbeat refreshed")
    finally:
        web.kill()
    stale = refreshed.last_seen + timedelta(seconds=31)
    assert not availability.liveness(stale)["web_ok"]  # killed: no refresh, stale after 30 s

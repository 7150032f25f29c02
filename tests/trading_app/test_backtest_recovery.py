"""A backtest whose worker is lost mid-run is detected by its heartbeat and re-run from scratch on a
fresh account (same result as an uninterrupted run), or failed with the reason once
NEXUS_BACKTEST_MAX_ATTEMPTS runs were lost; a replay that was given up for lost stops and stores
nothing; a sweep whose chord counted a lost point is summarised once its last point is final."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.processes import OwnRedis, django_shell, subprocess_env
from tests.support.waiting import wait_for
from trading_app import conf
from trading_app import operations as trading
from trading_app.backtest import recovery, service, sweeps
from trading_app.backtest.record import Backtest
from trading_app.models import BrokerAccount, Order
from trading_app.plugin import PLUGIN
from workflows_app import operations

pytestmark = [pytest.mark.django_db(transaction=True)]

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM"]
STEPS = [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": SYMBOLS, "store": False}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.3}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
]
SCHEDULE = [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}]


def _workflow(name: str) -> str:
    return operations.workflow_create(name=name, steps=STEPS, triggers=SCHEDULE)["workflow_id"]


def _stale_later():
    return timezone.now() + timedelta(seconds=float(conf.get("NEXUS_BACKTEST_STALE_SECONDS")) + 1)


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own: the suite's in-process worker (other tests') never takes its tasks."""
    server = OwnRedis(tmp_path, db=0, socket_timeout=5).start()
    yield server
    server.kill()


def _sender(url: str):
    """Send the run task to ``url``'s Redis, from a Django process of its own (this one's Celery app
    talks to the suite's Redis)."""
    env = subprocess_env(REDIS_URL=url)
    return lambda pk: django_shell(f"from trading_app.backtest.service import _send; _send({str(pk)!r})", env, 120)


@pytest.mark.slow
def test_a_worker_sigkilled_mid_backtest_is_rerun_from_scratch_with_the_same_result(
        worker_process, own_redis, monkeypatch):
    monkeypatch.setenv("REDIS_URL", own_redis.url)  # the worker below consumes our Redis
    send = _sender(own_redis.url)
    monkeypatch.setattr(service, "_send", send)
    monkeypatch.setattr(recovery, "_send", send)
    wf = _workflow("bt-recover")
    args = {"workflow_id": wf, "start": "2024-01-01", "end": "2024-07-01", "interval": "1d", "symbols": SYMBOLS}
    lost = trading.workflow_backtest(**args)["backtest_id"]
    worker = worker_process(queues="trading", concurrency=1)
    wait_for(lambda: Backtest.objects.filter(pk=lost, status="running", bars_done__gt=0).exists(), timeout=180,
             interval=0.1, message="the backtest running, with progress")
    worker.kill()  # SIGKILL the worker and its pool process mid-replay
    bt = Backtest.objects.get(pk=lost)
    assert bt.status == "running" and 0 < bt.bars_done < bt.bars_total, (bt.status, bt.bars_done, bt.bars_total)
    first_account = bt.account_id

    assert recovery.reconcile() == {"rerun": [], "failed": [], "summarised": []}  # its heartbeat is recent
    assert recovery.reconcile(now=_stale_later())["rerun"] == [lost]
    bt.refresh_from_db()
    assert (bt.status, bt.attempt, bt.bars_done, bt.started_at) == ("queued", 2, 0, None)
    assert bt.account_id != first_account and not BrokerAccount.objects.filter(pk=first_account).exists()
    assert not Order.objects.filter(account_id=first_account).exists()  # the lost attempt's orders went with it

    reference = trading.workflow_backtest(**args)["backtest_id"]  # the same run, never interrupted
    worker_process(queues="trading", concurrency=1)
    for pk in (lost, reference):
        wait_for(lambda pk=pk: Backtest.objects.get(pk=pk).is_final, timeout=600, interval=0.5,
                 message="the backtests final")
    rerun, ref = Backtest.objects.get(pk=lost), Backtest.objects.get(pk=reference)
    assert rerun.status == ref.status == "succeeded", (rerun.error, ref.error)
    assert rerun.attempt == 2 and rerun.metrics == ref.metrics
    assert [(t["symbol"], t["side"], t["qty"], t["price"], t["at"]) for t in rerun.artefacts["trades"]] == \
        [(t["symbol"], t["side"], t["qty"], t["price"], t["at"]) for t in ref.artefacts["trades"]]
    assert trading.backtest_status(backtest_id=lost)["attempt"] == 2


@pytest.fixture
def unsent(monkeypatch):
    """Nothing reaches a worker: these tests run the task body themselves."""
    monkeypatch.setattr(service, "_send", lambda pk: None)
    monkeypatch.setattr(sweeps, "send", lambda parent, children: None)


def _running(wf: str, **changes) -> Backtest:
    """A backtest row as a lost worker leaves it (claimed, progress, then silence)."""
    bt = Backtest.objects.get(pk=trading.workflow_backtest(workflow_id=wf, start="2024-01-01", end="2024-02-01",
                                                           symbols=["AAPL"])["backtest_id"])
    Backtest.objects.filter(pk=bt.pk).update(status="running", started_at=timezone.now(),
                                             heartbeat_at=timezone.now(), bars_done=3, **changes)
    return Backtest.objects.get(pk=bt.pk)


def test_after_the_last_attempt_a_lost_backtest_is_failed_with_the_reason(settings, unsent):
    settings.NEXUS_BACKTEST_MAX_ATTEMPTS = 2
    bt = _running(_workflow("bt-recover-fail"), attempt=2)
    assert recovery.reconcile(now=_stale_later()) == {"rerun": [], "failed": [str(bt.pk)], "summarised": []}
    bt.refresh_from_db()
    assert bt.status == "failed" and bt.finished_at is not None
    assert bt.error.startswith("worker lost: no heartbeat since") and "2 attempt(s) lost" in bt.error


def test_a_replay_given_up_for_lost_stops_at_its_next_heartbeat_and_stores_nothing(monkeypatch, unsent):
    bt = Backtest.objects.get(pk=trading.workflow_backtest(
        workflow_id=_workflow("bt-superseded"), start="2024-01-01", end="2024-03-01", symbols=["AAPL"])["backtest_id"])
    from trading_app.backtest import replay

    real = replay.Replay.run

    def taken_over(self):  # as if recovery re-ran it while this replay was still going
        Backtest.objects.filter(pk=bt.pk).update(attempt=2, status="queued")
        real(self)

    monkeypatch.setattr(replay.Replay, "run", taken_over)
    assert service.run(str(bt.pk)) == {"status": "superseded"}
    bt.refresh_from_db()
    assert (bt.status, bt.attempt, bt.metrics, bt.finished_at) == ("queued", 2, {}, None)


def test_a_sweep_is_summarised_once_its_last_point_is_final(unsent):
    wf = _workflow("bt-recover-sweep")
    parent = Backtest.objects.get(pk=trading.workflow_backtest(
        workflow_id=wf, start="2024-01-01", end="2024-02-01", symbols=["AAPL"],
        sweep={"steps[2].params.threshold": [0.2, 0.4]})["backtest_id"])
    first, second = parent.points.order_by("created_at")
    service.run(str(first.pk))
    assert sweeps.summarize(str(parent.pk)) == {"waiting": 1, "final": False}  # the chord fired early
    parent.refresh_from_db()
    assert not parent.is_final
    assert service.run(str(second.pk))["sweep"] == {"points": 2, "failed": 0}  # the last point summarises
    parent.refresh_from_db()
    assert parent.status == "succeeded" and len(parent.metrics["ranking"]) == 2


def test_the_reconciler_is_a_beat_job_on_the_maintenance_queue(settings):
    from nexus_project.celery import app

    settings.NEXUS_BACKTEST_RECONCILE_SECONDS = 7
    job = next(j for j in PLUGIN.beat_jobs if j.task == "nexus.maintenance.reconcile_backtests")
    assert float(job.every()) == 7.0
    assert app.amqp.router.route({}, job.task)["queue"].name == "maintenance"  # never behind the backtests

"""Engine latency and throughput against an honest floor, all kinds interleaved in one run.

Four kinds, each "4 no-op hops, call -> the last one's result":
  (a) raw Redis: 4 BLPOP/LPUSH hops through forwarder processes (bench/raw_hops.py), no framework;
  (b) plain Celery chain, Redis result backend (THE FLOOR): a separate app (bench/plain_celery.py)
      with Nexus's delivery settings, `ignore_result` on the first three tasks, the caller waiting
      on the last result (Celery's Redis pub/sub), its own worker subprocess, same concurrency;
  (c) the old floor: a chain of Nexus's `nexus.engine.noop` on Nexus's worker, every task's result
      stored in django-celery-results (plus track_started, result_extended), the caller polling the
      table every 2 ms;
  (d) a 4-step no-op workflow (transform steps) through operations.workflow_execute, until the
      execution is `succeeded` (engine.wait_until_final: a Redis signal, the database as truth).
Latency: N rounds, each running every kind once, in a rotating order, so the machine's load hits
all kinds alike. Throughput: M of a kind queued at once -> completions/s, the kinds alternated over
`--rounds`. Every ratio is against (b); the issue-14 targets are printed met / not met, unadjusted.

    python bench/engine_latency.py [--quick] [--n 200] [--m 500] [--rounds 2] [--concurrency 4]
Database: DATABASE_URL (PostgreSQL) or the default SQLite; Redis db BENCH_REDIS_DB (default 14).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

from _harness import ROOT, Worker, configure, database_kind, load_average, ms, percentile

KINDS = ("raw_redis", "plain_celery", "django_db_chain", "workflow")
LABELS = {"raw_redis": "(a) raw Redis 4 hops", "plain_celery": "(b) plain Celery chain, Redis backend",
          "django_db_chain": "(c) old floor: chain, django-db results", "workflow": "(d) Nexus 4-step workflow"}
FLOOR = "plain_celery"
# issue 14, same-run ratios of (d) against (b): p50, p99 (None: no target), throughput
TARGETS = {"postgresql": (3.0, 3.0, 0.35), "sqlite": (2.0, None, 0.5)}


class Kinds:
    """One callable per kind for a single timed call and for M queued at once."""

    def __init__(self, redis_url: str, concurrency: int):
        # the caller's plain app on the same Redis as its worker (plain_celery reads it at import)
        os.environ["BENCH_PLAIN_REDIS_URL"] = redis_url
        import plain_celery
        import redis
        from celery import chain

        from workflows_app import operations
        from workflows_app.engine import wait_until_final
        from workflows_app.models import Execution
        from workflows_app.tasks import noop

        self.redis = redis.Redis.from_url(redis_url)
        self.prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
        self.forwarders = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "raw_hops.py"), redis_url, self.prefix])
                           for _ in range(concurrency)]
        self.plain_worker = Worker(concurrency, queues=plain_celery.QUEUE, app="plain_celery", cwd=ROOT / "bench",
                                   # no DJANGO_SETTINGS_MODULE: Celery would load its Django fix-up
                                   env={"BENCH_PLAIN_REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": None}, name="bench-plain")
        self.nexus_worker = Worker(concurrency)
        self.plain_chain = plain_celery.chain_of_four
        self.nexus_chain = lambda: chain(noop.si(), noop.si(), noop.si(), noop.si())
        self.operations, self.wait_until_final, self.Execution = operations, wait_until_final, Execution
        wf = operations.workflow_create(name=f"bench-noop-{uuid.uuid4().hex[:8]}",
                                        steps=[{"name": f"s{i}", "type": "transform"} for i in range(4)])
        self.workflow_id = wf["workflow_id"]

    def stop(self) -> None:
        for process in self.forwarders:
            process.terminate()
            process.wait(10)
        self.plain_worker.stop()
        self.nexus_worker.stop()

    # --- one call, timed -------------------------------------------------------------------------
    def once(self, kind: str) -> float:
        start = time.perf_counter()
        if kind == "raw_redis":
            reply = f"{self.prefix}:reply:{uuid.uuid4().hex}"
            self.redis.lpush(f"{self.prefix}:hop:0", reply)
            assert self.redis.blpop([reply], timeout=60), "raw hop chain lost"
        elif kind == "plain_celery":
            self.plain_chain().apply_async().get(timeout=60)
        elif kind == "django_db_chain":
            self.nexus_chain().apply_async().get(interval=0.002, timeout=60)
        else:
            reply = self.operations.workflow_execute(workflow_id=self.workflow_id, input_data={})
            execution = self.wait_until_final(reply["execution_id"], 60)
            assert execution.status == "succeeded", execution.status
        return time.perf_counter() - start

    # --- M queued at once: seconds from the first send to the last completion ------------------------
    def many(self, kind: str, m: int) -> float:
        start = time.perf_counter()
        if kind == "raw_redis":
            reply = f"{self.prefix}:reply:{uuid.uuid4().hex}"
            pipe = self.redis.pipeline(transaction=False)
            for _ in range(m):
                pipe.lpush(f"{self.prefix}:hop:0", reply)
            pipe.execute()
            for _ in range(m):
                assert self.redis.blpop([reply], timeout=600), "raw hop chain lost"
        elif kind in ("plain_celery", "django_db_chain"):
            make = self.plain_chain if kind == "plain_celery" else self.nexus_chain
            results = [make().apply_async() for _ in range(m)]
            for result in results:
                result.get(timeout=600, **({"interval": 0.01} if kind == "django_db_chain" else {}))
        else:
            ids = [self.operations.workflow_execute(workflow_id=self.workflow_id, input_data={})["execution_id"]
                   for _ in range(m)]
            while self.Execution.objects.filter(pk__in=ids, status="succeeded").count() < m:
                if self.Execution.objects.filter(pk__in=ids, status="failed").exists():
                    raise SystemExit("a benchmark execution failed")
                time.sleep(0.05)
        return time.perf_counter() - start


def verdict(value: float, target: float | None, at_most: bool) -> str:
    if target is None:
        return "(no target)"
    met = value <= target if at_most else value >= target
    return f"target {'<=' if at_most else '>='} {target:g}x: {'met' if met else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="latency rounds (each runs every kind once)")
    parser.add_argument("--m", type=int, default=500, help="queued at once per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds, kinds alternated")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="n=40, m=100, rounds=1")
    args = parser.parse_args()
    if args.quick:
        args.n, args.m, args.rounds = 40, 100, 1
    load_start = load_average()
    env = configure()
    db = database_kind()
    kinds = Kinds(env["REDIS_URL"], args.concurrency)
    try:
        for _ in range(5):  # warm up every path (connections, imports, worker processes)
            for kind in KINDS:
                kinds.once(kind)
        latencies: dict[str, list[float]] = {k: [] for k in KINDS}
        for round_no in range(args.n):
            for i in range(len(KINDS)):  # rotating order: no kind always runs right after another
                kind = KINDS[(round_no + i) % len(KINDS)]
                latencies[kind].append(kinds.once(kind))
        busy: dict[str, float] = {k: 0.0 for k in KINDS}
        for round_no in range(args.rounds):
            for i in range(len(KINDS)):
                kind = KINDS[(round_no + i) % len(KINDS)]
                busy[kind] += kinds.many(kind, args.m)
    finally:
        kinds.stop()
    load_end = load_average()

    stats = {k: (percentile(v, 0.5), percentile(v, 0.99), args.m * args.rounds / busy[k])
             for k, v in latencies.items()}
    f50, f99, frate = stats[FLOOR]
    print(f"database: {db}; worker concurrency {args.concurrency}; latency n={args.n} per kind (interleaved); "
          f"throughput m={args.m} x {args.rounds} round(s) per kind (alternated)")
    print(f"load average at start: {load_start}")
    print(f"load average at end:   {load_end}")
    print(f"{'kind':44} {'p50':>9} {'p99':>9} {'thru/s':>8}   ratio to (b): p50 / p99 / throughput")
    for kind in KINDS:
        p50, p99, rate = stats[kind]
        print(f"{LABELS[kind]:44} {ms(p50):>9} {ms(p99):>9} {rate:8.1f}   "
              f"{p50 / f50:.2f}x / {p99 / f99:.2f}x / {rate / frate:.2f}x")
    w50, w99, wrate = stats["workflow"]
    o50, o99, orate = stats["django_db_chain"]
    print(f"old ratio, (d) against (c): p50 {w50 / o50:.2f}x  p99 {w99 / o99:.2f}x  throughput {wrate / orate:.2f}x "
          f"(the floor published before issue 14)")
    t50, t99, trate = TARGETS[db]
    print(f"issue 14 targets ({db}), (d) against (b):")
    print(f"  p50        {w50 / f50:.2f}x  {verdict(w50 / f50, t50, True)}")
    print(f"  p99        {w99 / f99:.2f}x  {verdict(w99 / f99, t99, True)}")
    print(f"  throughput {wrate / frate:.2f}x  {verdict(wrate / frate, trate, False)}")


if __name__ == "__main__":
    main()

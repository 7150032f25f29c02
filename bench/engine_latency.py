"""Engine latency and throughput against a plain Celery chain on the same worker and Redis.

1. Latency, interleaved: N x a plain chain of 4 no-op tasks vs N x a 4-step no-op workflow
   (transform steps with nothing to compute) through operations.workflow_execute, each timed
   from the call until the chain's last result / the execution's `succeeded`.
2. Throughput: M workflow executions queued at once vs M plain chains, completions per second.

    python bench/engine_latency.py [--n 300] [--m 1000] [--rounds 2] [--concurrency 4]
Targets (issue 3): workflow p50 and p99 <= 3x the chain's; throughput >= 0.5x.
"""
from __future__ import annotations

import argparse
import time

from _harness import Worker, configure, ms, percentile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds, alternating chains and workflows")
    args = parser.parse_args()
    env = configure()

    from celery import chain

    from workflows_app import operations
    from workflows_app.engine import wait_until_final
    from workflows_app.models import Execution
    from workflows_app.tasks import noop

    worker = Worker(concurrency=args.concurrency)
    try:
        name = f"bench-noop-{int(time.time())}"
        wf = operations.workflow_create(name=name, steps=[{"name": f"s{i}", "type": "transform"} for i in range(4)])
        wf_id = wf["workflow_id"]

        def plain_chain() -> float:
            start = time.perf_counter()
            chain(noop.si(), noop.si(), noop.si(), noop.si()).apply_async().get(interval=0.002, timeout=60)
            return time.perf_counter() - start

        def workflow() -> float:
            start = time.perf_counter()
            reply = operations.workflow_execute(workflow_id=wf_id, input_data={})
            execution = wait_until_final(reply["execution_id"], 60)
            assert execution.status == "succeeded", execution.status
            return time.perf_counter() - start

        for _ in range(10):  # warm up both paths (connections, imports)
            plain_chain()
            workflow()
        chains, flows = [], []
        for _ in range(args.n):  # interleaved so both see the same machine load
            chains.append(plain_chain())
            flows.append(workflow())

        def stats(values):
            return percentile(values, 0.5), percentile(values, 0.99)

        c50, c99 = stats(chains)
        w50, w99 = stats(flows)
        print(f"database: {env['DATABASE_URL'].split(':')[0]}, worker concurrency {args.concurrency}, n={args.n}")
        print(f"plain chain (floor)   p50 {ms(c50)}  p99 {ms(c99)}")
        print(f"workflow (4 steps)    p50 {ms(w50)}  p99 {ms(w99)}")
        print(f"ratio                 p50 {w50 / c50:.2f}x  p99 {w99 / c99:.2f}x   (target <= 3x)")

        # Throughput: everything queued at once, time until the last completion. Alternated over
        # rounds so both see the same background load; the ratio is of the summed times.
        def chain_round() -> float:
            start = time.perf_counter()
            results = [chain(noop.si(), noop.si(), noop.si(), noop.si()).apply_async() for _ in range(args.m)]
            for result in results:
                result.get(interval=0.01, timeout=600)
            return time.perf_counter() - start

        def flow_round() -> float:
            start = time.perf_counter()
            ids = [operations.workflow_execute(workflow_id=wf_id, input_data={})["execution_id"] for _ in range(args.m)]
            while Execution.objects.filter(pk__in=ids, status="succeeded").count() < args.m:
                if Execution.objects.filter(pk__in=ids, status="failed").exists():
                    raise SystemExit("a benchmark execution failed")
                time.sleep(0.2)
            return time.perf_counter() - start

        chain_time = flow_time = 0.0
        for round_no in range(args.rounds):
            c, f = chain_round(), flow_round()
            chain_time, flow_time = chain_time + c, flow_time + f
            print(f"  round {round_no + 1}: plain chains {args.m / c:.1f}/s  workflows {args.m / f:.1f}/s  "
                  f"ratio {c / f:.2f}x")
        chain_rate = args.m * args.rounds / chain_time
        flow_rate = args.m * args.rounds / flow_time
        print(f"throughput m={args.m} x {args.rounds}  plain chains {chain_rate:.1f}/s  workflows {flow_rate:.1f}/s  "
              f"ratio {flow_rate / chain_rate:.2f}x   (target >= 0.5x)")
    finally:
        worker.stop()


if __name__ == "__main__":
    main()

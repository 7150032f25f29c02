"""Draining a queue through its handler (the push consumers' loop), with FIFO gating per message
group: a consumer runs a message only when it is the head of its group's list, so two consumers
never reorder a group (the later one waits for the earlier ack).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from workflows_app.circuit import redis_client
from workflows_app.errors import StepError
from workflows_app.models import MessageQueue
from workflows_app.queues import layout
from workflows_app.queues.config import get_queue
from workflows_app.queues.dead_letters import dead_letter, record_failure
from workflows_app.queues.handlers import handler_for
from workflows_app.queues.maintenance import compact
from workflows_app.queues.streams import Message, ack_and_receive, consumer_name, receive

log = logging.getLogger(__name__)


def _wait_for_turn(queue: MessageQueue, message: Message, accepted: set[str], client: redis.Redis,
                   max_wait: float) -> bool:
    """FIFO: wait until every earlier message of the group is acked or accepted by this consumer.

    Gives up at once when an earlier message has been idle for visibility_timeout (its consumer
    failed or died): that one is reclaimed and retried first, by the next receive."""
    group_list = layout.group_list_key(queue.name, message.group_id)
    stream = layout.stream_key(queue.name)
    deadline = time.monotonic() + max_wait
    idle_limit = int(queue.visibility_timeout * 1000)
    pause = 0.002
    while True:
        pos = client.lpos(group_list, message.id)
        if not pos:
            return True
        blockers = [mid for mid in client.lrange(group_list, 0, pos - 1) if mid not in accepted]
        if not blockers:
            return True
        gone = [mid for mid in blockers if not client.xrange(stream, mid, mid)]
        for mid in gone:  # trimmed or deleted without an ack: not a blocker
            client.lrem(group_list, 1, mid)
        if gone:
            continue
        pending = client.xpending_range(stream, layout.GROUP, blockers[0], blockers[0], 1)
        if pending and pending[0]["time_since_delivered"] >= idle_limit:
            return False  # abandoned: reclaim it before anything later in its group
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _runnable(queue: MessageQueue, messages: list[Message], client: redis.Redis) -> tuple[list[Message], bool]:
    """The messages of a batch this consumer may run now, in order (FIFO gating per group), and
    whether each was at its turn already (no wait, none held back). The others stay unacked and
    come back after the visibility timeout, behind their group's head."""
    if queue.ordering != MessageQueue.Ordering.FIFO:
        return messages, True
    accepted: set[str] = set()
    per_group: dict[str, int] = {}
    blocked: set[str] = set()
    out = []
    at_turn = True
    for message in messages:
        group, pos = message.group_id, message.position
        if group in blocked:
            continue
        # Fast path: everything ahead of it in its group is already accepted in this batch.
        ready = pos is None or pos == per_group.get(group, 0)
        if not ready:
            at_turn = False
            ready = _wait_for_turn(queue, message, accepted, client, max_wait=min(queue.visibility_timeout, 30))
        if not ready:
            blocked.add(group)  # keep the group's order: it comes back after the visibility timeout
            continue
        accepted.add(message.id)
        per_group[group] = per_group.get(group, 0) + 1
        out.append(message)
    return out, at_turn


def _fail(queue: MessageQueue, message: Message, exc: BaseException, client: redis.Redis) -> None:
    error_class = record_failure(queue, message.id, exc, client)
    log.warning("queue %s: message %s failed (%s): %s", queue.name, message.id, error_class, exc)
    if isinstance(exc, StepError) and not exc.transient:
        fields = {"body": layout.dumps(message.body), "group": message.group_id, "dedup": message.deduplication_id}
        dead_letter(queue, message.id, fields, deliveries=message.delivery_count, client=client)


def _run(queue: MessageQueue, handler: Callable, runnable: list[Message], client: redis.Redis,
         prefetched=None) -> tuple[list[Message], int, Callable | None]:
    """Run the handler over a batch: (the messages it handled, how many failed, the writes a batch
    handler returned to land before their acknowledgement). After a failure the rest of that
    message's group waits (its order holds)."""
    if getattr(handler, "batch", False):
        try:
            writes = handler(runnable, prefetched) if getattr(handler, "prefetch", None) else handler(runnable)
            return runnable, 0, writes if callable(writes) else None
        except Exception as exc:  # noqa: BLE001 - the batch's failure, not the worker's
            for message in runnable:
                _fail(queue, message, exc, client)
            return [], len(runnable), None
    done: list[Message] = []
    failed = 0
    failed_groups: set[str] = set()
    for message in runnable:
        if message.group_id in failed_groups:
            continue
        try:
            handler(message)
        except Exception as exc:  # noqa: BLE001 - any handler failure is the message's
            failed += 1
            _fail(queue, message, exc, client)
            failed_groups.add(message.group_id)
            continue
        done.append(message)
    return done, failed, None


def process(name: str, handler: Callable[[Message], object] | None = None, *, consumer: str | None = None,
            max_batches: int = 50, time_budget: float = 10.0, client: redis.Redis | None = None) -> dict:
    """Drain a queue through its handler: batches of batch_size, in group order, acked on success.

    A handler that raises leaves its message unacked: it becomes visible again after
    visibility_timeout and, once its deliveries are used up, goes to the dead-letter store.
    A ``PermanentStepError`` (any non-transient StepError) dead-letters it at once. A handler with
    ``batch = True`` gets the whole runnable batch (a list) at once; it may return a callable that
    is given the Redis pipeline of the batch's acknowledgement, to queue writes (its state) that
    must land before the ack, in the same round trip. Each batch is acknowledged in the round trip
    that receives the next one (see ``Drain``)."""
    queue = get_queue(name)
    handler = handler or handler_for(queue)
    if handler is None:
        return {"processed": 0, "failed": 0, "batches": 0, "deferred": 0}
    client = client or redis_client()
    drain = Drain(queue, handler, consumer or consumer_name(), client, max_batches, time_budget)
    if getattr(handler, "batch", False) and getattr(handler, "prefetch", None):
        drain.run_ahead()
    else:
        drain.run()
    if drain.batches:
        compact(queue, client)
    return {"processed": drain.processed, "failed": drain.failed, "batches": drain.batches,
            "deferred": drain.deferred}


class Drain:
    """One drain of a queue, one round trip per batch.

    ``run``: each round trip acknowledges the batch just handled (after the writes its handler
    returned) and receives the next, with the FIFO positions of its messages.

    ``run_ahead``, for a batch handler with ``prefetch(messages)`` (an object that queues reads on
    a pipeline, ``queue(pipeline)``, and takes their replies, ``take(replies)``): the consumer
    holds the next batch while it handles one, so each round trip acknowledges batch k, reads the
    positions of batch k+1 and - after them - what the handler prefetches for it, and receives
    batch k+2. The handler gets the prefetched replies only when every message of the batch was at
    its turn when they were read (a message that had to wait for an earlier one of its group,
    handled by another consumer, could see state older than that consumer's write); otherwise None
    and it reads for itself."""

    def __init__(self, queue: MessageQueue, handler: Callable, consumer: str, client: redis.Redis,
                 max_batches: int, time_budget: float):
        self.queue, self.handler, self.consumer, self.client = queue, handler, consumer, client
        self.max_batches, self.deadline = max_batches, time.monotonic() + time_budget
        self.processed = self.failed = self.batches = self.deferred = 0
        self.received = 0

    def _more(self, got: int) -> int:
        """How many to receive next: a full batch when the last one was full and budget is left."""
        if got >= self.queue.batch_size and self.received < self.max_batches and time.monotonic() < self.deadline:
            self.received += 1
            return self.queue.batch_size
        return 0

    def _handle(self, messages: list[Message], prefetched=None) -> tuple[list[Message], Callable | None]:
        self.batches += 1
        runnable, at_turn = _runnable(self.queue, messages, self.client)
        self.deferred += len(messages) - len(runnable)
        usable = prefetched if at_turn and len(runnable) == len(messages) else None
        done, failed, writes = _run(self.queue, self.handler, runnable, self.client, usable)
        self.failed += failed
        self.processed += len(done)
        return done, writes

    def run(self) -> None:
        self.received = 1
        messages = receive(self.queue.name, consumer=self.consumer, count=self.queue.batch_size, client=self.client)
        while messages:
            done, writes = self._handle(messages)
            count = self._more(len(messages))
            messages = []
            if done or writes or count:
                messages, _ = ack_and_receive(self.queue.name, done, consumer=self.consumer, count=count,
                                              before=writes, client=self.client)

    def run_ahead(self) -> None:
        self.received = 1
        held, _ = ack_and_receive(self.queue.name, [], consumer=self.consumer, count=self.queue.batch_size,
                                  received_positions=False, client=self.client)
        count = self._more(len(held))
        done: list[Message] = []
        writes = None
        while held:
            reads = self.handler.prefetch(held)
            received, cycled = ack_and_receive(
                self.queue.name, done, consumer=self.consumer, count=count, ahead=held, received_positions=False,
                before=writes, after=reads.queue if reads is not None else None, client=self.client)
            if reads is not None:
                reads.take(cycled.after)
            done, writes = self._handle(held, reads)
            count = self._more(len(received)) if count else 0
            held = received
        if done or writes:
            ack_and_receive(self.queue.name, done, consumer=self.consumer, count=0, before=writes, client=self.client)

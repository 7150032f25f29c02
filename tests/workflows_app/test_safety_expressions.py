"""Issue 11, finding 4: expressions and step outputs are bounded. The probes of the issue are
refused before anything large is built, a too-large output fails its step instead of being
stored, and audit rows and replies stay small."""
from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create, run
from workflows_app import operations
from workflows_app.expressions import (
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_VALUE_SIZE,
    ExpressionError,
    evaluate,
    size_of,
)
from workflows_app.models import AuditEvent, DeadLetter, StepRun

PROBES = ["'a'*10000*10000", "'%0100000000d' % 1", "'a'*10000*10000*10000", "b'a' * 10000 * 10000",
          "[[0] * 1000] * 1000", "'%.100000f' % 1.5", "'%*d' % [100000000, 1]", "('ab' + 'cd') * 99999",
          "x * x * x * x * x * x * x * x * x * x * x * x * x * x * x * x", "[s, s, s, s, s, s, s, s, s, s, s, s]"]
NAMES = {"x": 10**300, "s": "z" * 50_000}


@pytest.mark.parametrize("source", PROBES)
def test_the_size_bombs_are_expression_errors_at_once(source):
    started = time.monotonic()
    with pytest.raises(ExpressionError):
        evaluate(source, NAMES)
    # Refused before computing: far from the minute (and the MemoryError) of the unbounded evaluator.
    assert time.monotonic() - started < 5


def test_bounded_values_still_work():
    assert evaluate("'ab' * 3", {}) == "ababab"
    assert evaluate("'%5.2f|%s|%d%%' % [3.14159, 'x', 7]", {}) == " 3.14|x|7%"
    assert evaluate("'%(a)s' % d", {"d": {"a": 1}}) == "1"
    assert evaluate("99999999999 * 99999999999", {}) == 99999999999 * 99999999999
    assert evaluate("s + 'y'", {"s": "z" * 1000}) == "z" * 1000 + "y"


_literal = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=30).map(repr),
                     st.integers(0, 50_000), st.sampled_from(["x", "s", "'%d'", "'%0999d'", "[1, 2]"]))


@st.composite
def _expression(draw, depth=0):
    if depth > 4 or draw(st.booleans()):
        return str(draw(_literal))
    op = draw(st.sampled_from(["+", "-", "*", "%", "//"]))
    return f"({draw(_expression(depth + 1))} {op} {draw(_expression(depth + 1))})"


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_expression())
def test_any_arithmetic_is_bounded_or_an_expression_error(source):
    """Whatever the combination, the value produced is within the bounds, or the evaluator says no
    (never MemoryError, OverflowError or another exception)."""
    try:
        value = evaluate(source, {"x": 10**300, "s": "z" * 5000})
    except ExpressionError:
        return
    assert size_of(value) <= MAX_VALUE_SIZE
    if isinstance(value, int):
        assert value.bit_length() <= MAX_INT_BITS + 1


@hsettings(max_examples=200, deadline=None)
@given(width=st.integers(0, 10**9), precision=st.integers(0, 10**9), kind=st.sampled_from("dsfxeg"))
def test_format_widths_and_precisions_are_bounded(width, precision, kind):
    source = f"'%{width}.{precision}{kind}' % 12"
    try:
        value = evaluate(source, {})
    except ExpressionError:
        assert width > MAX_FORMAT_WIDTH or precision > MAX_FORMAT_WIDTH
        return
    assert len(value) <= 2 * MAX_FORMAT_WIDTH + 10


# --- over the engine --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_transform_size_bomb_fails_its_step_fast_and_the_worker_goes_on(celery_worker, client):
    bomb = create("bomb", [{"name": "boom", "type": "transform", "params": {"set": {"v": "'a'*10000*10000"}}}])
    execution = run(bomb)
    assert execution.status == "failed" and execution.error["error_class"] == "invalid_expression"
    fmt = create("fmt-bomb", [{"name": "boom", "type": "transform", "params": {"set": {"v": "'%0100000000d' % 1"}}}])
    assert run(fmt).error["error_class"] == "invalid_expression"
    # The same worker still runs the next workflow, and /health/ sees it answer.
    assert run(create("after", [{"name": "ok", "type": "test_noop"}])).status == "succeeded"
    health = wait_for(lambda: (lambda body: body if body["workers"]["ok"] else None)(client.get("/health/").json()),
                      timeout=60, message="/health/ to see the worker")
    assert health["database"]["ok"] and health["broker"]["ok"]


@pytest.mark.django_db(transaction=True)
def test_an_output_over_the_limit_fails_its_step_and_is_not_stored(celery_worker, settings):
    settings.NEXUS_MAX_STEP_OUTPUT_BYTES = 20_000
    big = create("big", [{"name": "make", "type": "transform", "params": {"set": {"v": "'a' * 30000"}}},
                         {"name": "never", "type": "test_noop"}])
    execution = run(big)
    assert execution.status == "failed" and execution.error["error_class"] == "output_too_large"
    refused = StepRun.objects.get(execution=execution, step_name="make")
    assert refused.status == "failed" and refused.result is None and "NEXUS_MAX_STEP_OUTPUT_BYTES" in refused.error
    assert "v" not in execution.context and not StepRun.objects.filter(step_name="never").exists()
    assert DeadLetter.objects.get(execution=execution).error_class == "output_too_large"


@pytest.mark.django_db(transaction=True)
def test_large_results_are_summarised_in_audit_rows_and_the_sync_reply(celery_worker):
    wf = create("large", [{"name": "make", "type": "transform", "params": {"set": {"v": "'a' * 60000"}}}])
    reply = operations.workflow_execute(workflow_id=wf, **{"async": False})
    assert reply["status"] == "succeeded"
    summary = reply["steps"]["make"]["result"]
    assert summary["summarised"] is True and summary["keys"] == ["v"] and summary["bytes"] > 60_000
    assert len(json.dumps(reply)) < 10_000
    completed = AuditEvent.objects.get(event="step_completed", step="make")
    assert completed.data["result"]["summarised"] is True
    assert max(len(json.dumps(e.data)) for e in AuditEvent.objects.all()) < 20_000
    # The full result is kept once, in its step run.
    assert StepRun.objects.get(step_name="make").result == {"v": "a" * 60000}

"""Helpers of the trading tests: a step's context built as the engine builds it, one step run
directly through its handler (no worker, no execution), and a simulated market that reads BUY."""
from __future__ import annotations

import uuid

from trading_app.providers import simulated
from workflows_app.registry import StepContext, registry


def make_ctx(step_type: str, params: dict | None = None, *, context: dict | None = None,
             input_data: dict | None = None, test_mode: bool = True, execution_id: str | None = None,
             step_name: str | None = None, compensating: dict | None = None, attempt: int = 1) -> StepContext:
    st = registry.get_step_type(step_type)
    assert st is not None, f"step type {step_type} not registered"
    input_data = input_data or {}
    ctx_dict = {**input_data, **(context or {})}
    return StepContext(
        execution_id=execution_id or str(uuid.uuid4()), workflow_id=str(uuid.uuid4()), workflow_name="test-wf",
        step_name=step_name or step_type, step_type=step_type, params=st.params_model.model_validate(params or {}),
        context=ctx_dict, input_data=input_data, test_mode=test_mode, attempt=attempt, compensating=compensating,
    )


def run_step(step_type: str, params: dict | None = None, **kw) -> dict:
    ctx = make_ctx(step_type, params, **kw)
    return registry.get_step_type(step_type).handler(ctx)


def bullish_aapl() -> None:
    """Strongly positive news on AAPL from two sources and a +2% jump: the simulated AAPL is a BUY
    (at a pinned clock: see the bullish_market fixture)."""
    for h in ("Apple beats earnings estimates, shares surge to record", "Apple upgraded to buy, bullish rally",
              "Apple posts record profit, stock soars", "Apple raises guidance, analysts bullish",
              "Apple stock rallies after strong iPhone sales beat"):
        for source in ("Reuters", "Bloomberg"):
            simulated.inject_headline(h, ["AAPL"], source=source, summary=f"{source} report")
    simulated.inject_jump("AAPL", 0.02)  # an uptrend, not overbought: RSI ~59 reads bullish (README "Signal scoring")

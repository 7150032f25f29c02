"""The specification's adaptive example as a step type: `adapt_to_volatility`.

It measures volatility (annualised realised volatility of a symbol's daily closes, or a value
given in params/the context) and changes another workflow's parameters by path:
above `volatility_threshold` it applies `high` (default: threshold 0.9, risk_limit 0.01), else
`normal` (0.7, 0.02). Executions already running keep their version; it writes a new version
only when a value actually changes.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trading_app.providers import get_market_data
from workflows_app import operations
from workflows_app.errors import OperationError, PermanentStepError
from workflows_app.registry import RetryPolicy, StepContext, StepType

HIGH = {"steps[2].params.threshold": 0.9, "steps[3].params.risk_limit": 0.01}
NORMAL = {"steps[2].params.threshold": 0.7, "steps[3].params.risk_limit": 0.02}


class AdaptParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow_id: str = Field("alpaca-trading-workflow", max_length=200, description="Workflow to adapt (uuid or name).")
    symbol: str = Field("SPY", max_length=16, description="Whose realised volatility is measured.")
    window: int = Field(20, ge=2, le=250, description="Daily returns in the estimate.")
    volatility_threshold: float = Field(0.3, gt=0, le=10)
    volatility: float | None = Field(None, ge=0, le=20, description="Use this value instead of measuring.")
    high: dict[str, float | int | str] = Field(default_factory=lambda: dict(HIGH))
    normal: dict[str, float | int | str] = Field(default_factory=lambda: dict(NORMAL))


def realised_volatility(closes: np.ndarray) -> float:
    returns = np.diff(np.log(closes.astype(float)))
    return float(np.std(returns, ddof=1) * math.sqrt(252)) if len(returns) > 1 else 0.0


def adapt_to_volatility(ctx: StepContext) -> dict:
    p: AdaptParams = ctx.params
    volatility = p.volatility if p.volatility is not None else ctx.context.get("market_volatility")
    source = "given"
    if volatility is None:
        bars = get_market_data(ctx.test_mode).daily_bars(p.symbol, limit=p.window + 1)
        volatility, source = realised_volatility(bars["close"].to_numpy()), f"realised({p.symbol},{p.window}d)"
    regime = "high" if volatility > p.volatility_threshold else "normal"
    wanted = p.high if regime == "high" else p.normal
    try:
        current = operations.workflow_get(workflow_id=p.workflow_id)
    except OperationError as exc:
        raise PermanentStepError(exc.message, error_class="invalid_params") from exc
    steps = {str(i): s for i, s in enumerate(current["steps"])} | {s["name"]: s for s in current["steps"]}
    changes = {}
    for path, value in wanted.items():
        try:
            ref, _, rest = path.partition("].params.")
            if steps[ref.removeprefix("steps[")]["params"].get(rest) != value:
                changes[path] = value
        except KeyError:
            changes[path] = value  # let workflow_update name the bad path
    version = current["version"]
    if changes:
        try:
            version = operations.workflow_update(workflow_id=p.workflow_id, updates=changes)["version"]
        except OperationError as exc:
            raise PermanentStepError(exc.message, error_class="invalid_params") from exc
    return {"volatility": round(volatility, 6), "volatility_source": source, "regime": regime,
            "applied": wanted, "changed": sorted(changes), "workflow_version": version}


STEP_TYPES = (
    StepType(name="adapt_to_volatility", handler=adapt_to_volatility, params_model=AdaptParams,
             retry=RetryPolicy(max_retries=2),
             description="Set another workflow's signal threshold and risk limit by the measured volatility."),
)

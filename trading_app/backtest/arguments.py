"""The arguments of ``workflow_backtest`` and the fill model's parameters, with their bounds.

Operator ceilings (settings, can only be tightened by an argument): ``NEXUS_BACKTEST_MAX_BARS``
bars per symbol replayed, ``NEXUS_BACKTEST_MAX_SYMBOLS`` symbols, ``NEXUS_BACKTEST_MAX_DAYS`` days
of range. Fill model defaults (pessimistic, see ``fills``): 2 bps half-spread crossed, 5 bps
slippage, $0.005 a share (minimum $1), at most 10 % of a bar's volume per fill.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from trading_app import conf
from trading_app.steps.common import _raise_symbol, _wellformed
from trading_app.symbols import normalise
from workflows_app.operations.fields import Args, Int, Number, Object, Timestamp, refuse, workflow_ref

INTERVAL_SECONDS = {"1d": 86_400, "1h": 3_600, "1m": 60}
# Session bars per year (XNYS: 252 sessions of 6.5 hours): annualises Sharpe and Sortino.
PERIODS_PER_YEAR = {"1d": 252, "1h": 252 * 7, "1m": 252 * 390}
# Rough bars per calendar day, for the bars ceiling before any data is loaded.
BARS_PER_DAY = {"1d": 252 / 365, "1h": 252 * 7 / 365, "1m": 252 * 390 / 365}


class FillModel(Args):
    spread_bps: Number = Field(2.0, ge=0, le=500, description="Half-spread crossed by every fill, in bps.")
    slippage_bps: Number = Field(5.0, ge=0, le=500, description="Further adverse move per fill, in bps.")
    commission_per_share: Number = Field(0.005, ge=0, le=1)
    commission_min: Number = Field(1.0, ge=0, le=100)
    volume_share: Number = Field(0.1, gt=0, le=1, description="At most this share of a bar's volume fills; "
                                                                "the rest carries to the next bar.")


class BacktestArgs(Args):
    workflow_id: str = workflow_ref()
    start: Timestamp = Field(..., description="First replayed bar (ISO 8601; a date means 00:00 UTC).")
    end: Timestamp = Field(..., description="Last replayed time (exclusive upper bound).")
    interval: Literal["1d", "1h", "1m"] = "1d"
    data_source: Literal["simulated", "stored", "alpaca"] = Field(
        "simulated", description="simulated: the seeded simulator; stored: bars imported with manage.py "
                                 "import_bars; alpaca: Alpaca's historical bars (needs the Alpaca keys).")
    symbols: list[str] | None = Field(None, max_length=50, description="Default: the symbols the workflow's "
                                                                      "triggers and steps name.")
    initial_cash: Number = Field(100_000.0, ge=100, le=1e10)
    fill_model: Object = Field(default_factory=dict, validate_default=True, description="spread_bps, slippage_bps, commission_per_share, "
                                                                 "commission_min, volume_share (see README).")
    news_delay_seconds: Int = Field(0, ge=0, le=86_400, description="An article is seen this long after its "
                                                                     "publish time (the simulator's feed: at once).")
    sweep: Object = Field(default_factory=dict, description='A parameter grid {path: [values]} (e.g. {"steps[2].'
                                                             'params.threshold": [0.5, 0.7]}): one backtest per '
                                                             'point, spread over the workers, ranked by rank_by.')
    rank_by: Literal["sharpe", "sortino", "total_return", "excess_return", "win_rate", "max_drawdown"] = "sharpe"
    seed: Int = Field(None, ge=0, le=2**31 - 1, description="The simulator's seed (default NEXUS_SIM_SEED).")
    overrides: Object = Field(default_factory=dict, description='Path updates applied to this run only, as '
                                                                'workflow_update takes them: {"steps[2].params.'
                                                                'threshold": 0.8}.')

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dates(cls, value: Any):
        if isinstance(value, str) and len(value) == 10:  # a bare date: that day's midnight UTC
            return f"{value}T00:00:00+00:00"
        if value in (None, ""):
            raise refuse("is required")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value):
        if value is None:
            return value
        return list(dict.fromkeys(normalise(s) if _wellformed(s) else _raise_symbol(s) for s in value))

    @field_validator("fill_model")
    @classmethod
    def _fill_model(cls, value: dict) -> dict:
        from workflows_app.operations.catalogue import invalid_input

        try:
            return FillModel.model_validate(value).model_dump()
        except ValidationError as exc:  # "fill_model is invalid: volume_share must be between 0 and 1"
            raise refuse(f"is invalid: {invalid_input(FillModel, exc).message}") from None

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, value: dict) -> dict:
        points = 1
        for path, values in value.items():
            if not isinstance(values, list) or not 1 <= len(values) <= 32:
                raise refuse(f"{path} must be a list of 1 to 32 values")
            points *= len(values)
        ceiling = int(conf.get("NEXUS_BACKTEST_MAX_SWEEP_POINTS"))
        if points > ceiling:
            raise refuse(f"has {points} points, over NEXUS_BACKTEST_MAX_SWEEP_POINTS={ceiling}")
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict) -> dict:
        if len(value) > 50:
            raise refuse("must have at most 50 paths")
        return value


def check_range(start: datetime, end: datetime, interval: str) -> None:
    """The range within the operator's ceilings (ValueError naming the ceiling)."""
    if end <= start:
        raise ValueError("end must be after start")
    days = (end - start) / timedelta(days=1)
    if days > int(conf.get("NEXUS_BACKTEST_MAX_DAYS")):
        raise ValueError(f"the range is {days:.0f} days, over NEXUS_BACKTEST_MAX_DAYS="
                         f"{conf.get('NEXUS_BACKTEST_MAX_DAYS')}")
    bars = int(days * BARS_PER_DAY[interval])
    ceiling = int(conf.get("NEXUS_BACKTEST_MAX_BARS"))
    if bars > ceiling:
        raise ValueError(f"about {bars} {interval} bars per symbol, over NEXUS_BACKTEST_MAX_BARS={ceiling}")

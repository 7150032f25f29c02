"""Backtest metrics from the equity curve and the fills (pure functions; hand-checked in tests).

* returns: simple period returns of the equity curve (one point per replayed bar time);
* total_return = last / first - 1; max_drawdown = the largest fall from a running peak (a fraction);
* sharpe = mean(r) / stdev(r) x sqrt(periods per year) (risk-free rate 0, sample stdev);
* sortino = mean(r) / downside deviation x sqrt(periods per year), the downside deviation being
  sqrt(mean(min(r, 0)^2)) over all periods;
* win_rate = winning closing fills / closing fills (a closing fill realises P&L);
* exposure = the share of bar times with any position open;
* turnover = traded value / mean equity; fees = commissions paid;
* benchmark = buy-and-hold of the same symbols, equal weights, from the first bar's open to the
  last bar's close (no costs).
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def returns(equity: Sequence[float]) -> list[float]:
    return [b / a - 1.0 for a, b in zip(equity, equity[1:], strict=False) if a]


def max_drawdown(equity: Sequence[float]) -> float:
    peak, worst = -math.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, 1.0 - value / peak)
    return worst


def drawdown_series(equity: Sequence[float]) -> list[float]:
    peak, out = -math.inf, []
    for value in equity:
        peak = max(peak, value)
        out.append(0.0 if peak <= 0 else value / peak - 1.0)
    return out


def sharpe(rets: Sequence[float], periods_per_year: float) -> float | None:
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1))
    return None if sd == 0 else mean / sd * math.sqrt(periods_per_year)


def sortino(rets: Sequence[float], periods_per_year: float) -> float | None:
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / len(rets))
    return None if downside == 0 else mean / downside * math.sqrt(periods_per_year)


def win_rate(fills: Sequence[dict]) -> float | None:
    closing = [f for f in fills if f.get("realized_pnl")]
    return None if not closing else sum(1 for f in closing if f["realized_pnl"] > 0) / len(closing)


def benchmark(first_open: dict[str, float], last_close: dict[str, float]) -> float | None:
    """Equal-weight buy-and-hold return of the symbols (first open to last close)."""
    moves = [last_close[s] / first_open[s] - 1.0 for s in first_open if first_open[s] and s in last_close]
    return None if not moves else sum(moves) / len(moves)


def summary(equity: Sequence[float], exposed: Sequence[bool], fills: Sequence[dict], periods_per_year: float,
            bench: float | None) -> dict:
    rets = returns(equity)
    traded = sum(abs(f["qty"] * f["price"]) for f in fills)
    mean_equity = sum(equity) / len(equity) if equity else 0.0

    def r(x, n=6):
        return None if x is None else round(x, n)

    total = equity[-1] / equity[0] - 1.0 if len(equity) > 1 and equity[0] else 0.0
    return {
        "initial_equity": r(equity[0] if equity else None, 2), "final_equity": r(equity[-1] if equity else None, 2),
        "total_return": r(total), "max_drawdown": r(max_drawdown(equity)),
        "sharpe": r(sharpe(rets, periods_per_year), 4), "sortino": r(sortino(rets, periods_per_year), 4),
        "win_rate": r(win_rate(fills), 4), "exposure": r(sum(exposed) / len(exposed) if exposed else 0.0, 4),
        "turnover": r(traded / mean_equity if mean_equity else 0.0, 4),
        "fees": r(sum(f.get("commission", 0.0) for f in fills), 2), "fills": len(fills),
        "closing_fills": sum(1 for f in fills if f.get("realized_pnl")),
        "benchmark_return": r(bench), "excess_return": r(None if bench is None else total - bench),
    }

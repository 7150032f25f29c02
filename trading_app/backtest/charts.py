"""A finished backtest's charts, drawn with Plotly (plotly.js served from the installed package as
``vendor/plotly/plotly.min.js``): the equity curve over its drawdown, and each symbol's candles with
the entries and exits marked. The candles are the run's own bars again (the seeded simulator is
deterministic; stored bars are read back; Alpaca runs show no candles); runs of more than ``MAX_CANDLES`` bars a symbol show the equity chart only."""
from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trading_app.backtest.data import SimClock
from trading_app.backtest.sources import open_history
from trading_app.charts import candles_with_fills
from trading_app.providers.simulated._clock import seeded

MAX_CANDLES = 3000


def equity_figure(curve: list[dict]) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    times = [p["t"] for p in curve]
    fig.add_trace(go.Scatter(x=times, y=[p["equity"] for p in curve], name="equity"), row=1, col=1)
    fig.add_trace(go.Scatter(x=times, y=[p["drawdown"] for p in curve], name="drawdown", fill="tozeroy"),
                  row=2, col=1)
    fig.update_layout(height=420, margin={"l": 40, "r": 10, "t": 30, "b": 30}, title="Equity and drawdown")
    return fig


def candle_figure(symbol: str, bars, trades: list[dict]) -> go.Figure:
    marks = [t for t in trades if t["symbol"] == symbol]
    fig = go.Figure(candles_with_fills(symbol, bars, marks))  # the dashboard's candle chart, on the run's bars
    fig.update_layout(height=380, margin={"l": 40, "r": 10, "t": 30, "b": 30}, title=f"{symbol}: fills")
    return fig


def charts_html(bt) -> str:
    """The charts' HTML (divs and the scripts that draw them; plotly.js is loaded by the page)."""
    art = bt.artefacts or {}
    figures = [equity_figure(art.get("equity_curve") or [])]
    a = bt.arguments
    source = a.get("data_source") or "simulated"
    frames = {}
    if source != "alpaca":  # Alpaca's bars are not fetched again to draw a page: the equity chart only
        start, end = datetime.fromisoformat(a["start"]), datetime.fromisoformat(a["end"])
        with seeded(int(a["seed"])):
            frames = open_history(source, a["symbols"][:5], start, end, a["interval"], SimClock(start))[0].frames
    for symbol, bars in frames.items():
        if 0 < len(bars) <= MAX_CANDLES:
            figures.append(candle_figure(symbol, bars, art.get("trades") or []))
    return "".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figures)

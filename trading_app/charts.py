"""Plotly figures (plain JSON: ``{"data": [...], "layout": {...}}``) of the dashboard's money panels,
drawn in the browser by plotly.js served from the ``plotly`` package's own copy (static files).

The equity curve's y axis is autoranged around the values (an equity of 100,000 moving by 50 is
not a flat line at the top of a 0-100,000 axis). Candles are the market-data provider's daily bars
(a bounded window) with each fill of the window marked at its time and price.
"""
from __future__ import annotations

import logging

from trading_app.models import AccountSnapshot, Fill
from trading_app.providers import get_market_data

logger = logging.getLogger("nexus.trading.charts")
MAX_POINTS = 500  # per equity line
MAX_ACCOUNTS = 6
MAX_SYMBOLS = 4
CANDLE_SESSIONS = 60
MAX_MARKERS = 200
THEME = {"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", "font": {"color": "#dde6ee", "size": 11},
         "margin": {"l": 60, "r": 10, "t": 10, "b": 30}, "height": 260, "showlegend": True,
         "legend": {"orientation": "h", "y": 1.12}}
AXIS = {"gridcolor": "#2a3a4a", "zeroline": False, "automargin": True}


def equity_figure(since) -> dict:
    """One equity line per account with snapshots in the window (the newest ``MAX_POINTS`` each)."""
    ids = list(AccountSnapshot.objects.filter(taken_at__gte=since, account__isnull=False).order_by("account_id")
               .values_list("account_id", flat=True).distinct()[:MAX_ACCOUNTS])
    data = []
    for account_id in ids:
        rows = list(AccountSnapshot.objects.filter(account_id=account_id, taken_at__gte=since)
                    .select_related("account").order_by("-taken_at")[:MAX_POINTS])[::-1]
        if rows:
            data.append({"type": "scatter", "mode": "lines+markers", "name": rows[0].account.name,
                         "x": [r.taken_at.isoformat() for r in rows], "y": [float(r.equity) for r in rows],
                         "line": {"shape": "hv"}, "marker": {"size": 4}})
    layout = {**THEME, "xaxis": {**AXIS, "type": "date"},
              "yaxis": {**AXIS, "autorange": True, "rangemode": "normal", "tickformat": ",.2f", "title": "equity"}}
    return {"data": data, "layout": layout}


def candle_figures(since, market_data=None) -> list[dict]:
    """Per symbol traded in the window (at most ``MAX_SYMBOLS``): its daily candles and its fills."""
    symbols = list(Fill.objects.filter(timestamp__gte=since).order_by("symbol").values_list("symbol", flat=True)
                   .distinct()[:MAX_SYMBOLS])
    if not symbols:
        return []
    market_data = market_data or get_market_data()
    out = []
    for symbol in symbols:
        try:
            bars = market_data.daily_bars(symbol, limit=CANDLE_SESSIONS)
        except Exception as exc:  # noqa: BLE001 - a provider down must not hide the other panels
            logger.warning("candles of %s unavailable: %s", symbol, exc)
            out.append({"name": f"candles-{symbol}", "title": f"{symbol} (bars unavailable: {str(exc)[:120]})",
                        "figure": {"data": [], "layout": THEME}})
            continue
        out.append({"name": f"candles-{symbol}", "title": f"{symbol}: daily candles and fills",
                    "figure": _candles(symbol, bars, since)})
    return out


def _candles(symbol: str, bars, since) -> dict:
    fills = list(Fill.objects.filter(symbol=symbol, timestamp__gte=since).select_related("account")
                 .order_by("-timestamp")[:MAX_MARKERS])
    marks = [{"at": f.timestamp.isoformat(), "side": f.side, "price": float(f.price),
              "text": f"{f.account.name if f.account else ''} {f.side} {f.qty.normalize()} @ {f.price}"}
             for f in fills]
    return candles_with_fills(symbol, bars, marks)


def candles_with_fills(symbol: str, bars, marks: list[dict]) -> dict:
    """A candle chart of ``bars`` (open/high/low/close columns, a time index) with each fill marked:
    ``marks`` are ``{"at", "side": "buy"|"sell", "price", "text"?}``. Shared by the dashboard and the
    backtest charts."""
    data = [{"type": "candlestick", "name": symbol, "x": [t.isoformat() for t in bars.index],
             "open": bars["open"].round(4).tolist(), "high": bars["high"].round(4).tolist(),
             "low": bars["low"].round(4).tolist(), "close": bars["close"].round(4).tolist(),
             "increasing": {"line": {"color": "#3fb950"}}, "decreasing": {"line": {"color": "#f85149"}}}]
    for side, symbol_shape, color in (("buy", "triangle-up", "#58a6ff"), ("sell", "triangle-down", "#f0883e")):
        rows = [m for m in marks if m["side"] == side]
        if rows:
            data.append({"type": "scatter", "mode": "markers", "name": f"{side} fills",
                         "x": [m["at"] for m in rows], "y": [m["price"] for m in rows],
                         "text": [m.get("text") or f"{side} @ {m['price']}" for m in rows],
                         "hoverinfo": "text+x", "marker": {"symbol": symbol_shape, "size": 11, "color": color,
                                                           "line": {"width": 1, "color": "#0f1720"}}})
    layout = {**THEME, "xaxis": {**AXIS, "type": "date", "rangeslider": {"visible": False}},
              "yaxis": {**AXIS, "autorange": True, "title": "price"}}
    return {"data": data, "layout": layout}

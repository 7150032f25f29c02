"""A hand-computed paper-trading scenario for the money panels (P&L tests and the browser test).

Account ``pnl-test``: 100,000 cash, no slippage, commission max(1.00, 0.005 x qty).

- workflow ``momentum`` (one execution), AAPL: buy 10 @ 100 (fee 1), buy 10 @ 110 (fee 1: average
  105), sell 5 @ 120 (fee 1: realised 5 x 15 = 75). Open: 15 @ 105, last 120: unrealised 225.
  Fees 3, net 75 + 225 - 3 = 297.
- workflow ``meanrev`` (one execution), MSFT: buy 400 @ 50 (fee 2), sell 400 @ 49.50 (fee 2):
  closed, realised -200, fees 4, net -204.
- no execution (``(manual)``), TSLA: a bracket buy 10 @ 200 (fee 1) with stop 190 and target 220:
  open, unrealised 0, net -1; its two exit legs wait.

Account: realised -125, unrealised 225, fees 8, net 92; cash 96,292 + positions 3,800 = equity 100,092.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from trading_app import paper_ledger
from trading_app.models import BrokerAccount, Order
from workflows_app import operations
from workflows_app.models import Execution, Workflow


def _execution(name: str) -> Execution:
    created = operations.workflow_create(name=name, steps=[{"name": "noop", "type": "test_noop"}])
    wf = Workflow.objects.get(pk=created["workflow_id"])
    return Execution.objects.create(workflow=wf, version=wf.current_version, test_mode=True, status="succeeded")


def _fill(acct, execution, n: int, symbol: str, side: str, qty: str, price: str, at, scale=None,
          **extra) -> Order:
    if scale:  # the same trades moved to the market's price level (the browser test's pictures)
        price = str((Decimal(price) * scale[symbol]).quantize(Decimal("0.01")))
        extra = {k: (v * scale[symbol]).quantize(Decimal("0.01")) for k, v in extra.items() if k.endswith("_price")} | {
            k: v for k, v in extra.items() if not k.endswith("_price")}
    with transaction.atomic():
        locked = BrokerAccount.objects.select_for_update().get(pk=acct.pk)
        order = Order.objects.create(broker="paper", account=locked, client_order_id=f"pnl-test-{n}", symbol=symbol,
                                     side=side, qty=Decimal(qty), status="accepted", test_mode=True,
                                     execution_id=str(execution.pk) if execution else "", **extra)
        paper_ledger.fill(locked, order, Decimal(price), at=at)
    return order


BASE = {"AAPL": Decimal(100), "MSFT": Decimal(50), "TSLA": Decimal(200)}


def build(at_market: bool = False) -> dict:
    """The scenario (hand-computed figures above); ``at_market``: every price scaled so each symbol's
    entry sits at the simulated market's price (the figures then differ: only for pictures)."""
    scale = None
    if at_market:
        from trading_app.providers import get_market_data

        market = get_market_data()
        scale = {s: Decimal(str(market.latest_price(s))) / base for s, base in BASE.items()}
    cash = Decimal("1000000" if at_market else "100000")  # MSFT's 400 shares at the market's price
    acct = BrokerAccount.objects.create(name="pnl-test", starting_cash=cash, cash=cash,
                                        slippage_bps=Decimal("0"), commission_per_share=Decimal("0.005"),
                                        commission_min=Decimal("1"))
    momentum, meanrev = _execution("momentum"), _execution("meanrev")
    t0 = timezone.now() - timedelta(hours=2)
    _fill(acct, momentum, 1, "AAPL", "buy", "10", "100", t0, scale)
    _fill(acct, momentum, 2, "AAPL", "buy", "10", "110", t0 + timedelta(minutes=10), scale)
    _fill(acct, meanrev, 3, "MSFT", "buy", "400", "50", t0 + timedelta(minutes=20), scale)
    _fill(acct, meanrev, 4, "MSFT", "sell", "400", "49.50", t0 + timedelta(minutes=30), scale)
    _fill(acct, momentum, 5, "AAPL", "sell", "5", "120", t0 + timedelta(minutes=40), scale)
    _fill(acct, None, 6, "TSLA", "buy", "10", "200", t0 + timedelta(minutes=50), scale, order_class="bracket",
          stop_loss_price=Decimal("190"), take_profit_price=Decimal("220"))
    return {"account": acct, "momentum": momentum, "meanrev": meanrev}

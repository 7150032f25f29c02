"""Actions of ``conditional`` steps (run with default params): analyze, queue_for_execution, trade
and immediate_hedge. They compose the analysis, order and protection steps.
"""
from __future__ import annotations

import dataclasses

from pydantic import Field

from trading_app.steps.analysis import (
    NewsAnalysisParams,
    SignalParams,
    TechnicalAnalysisParams,
    news_analysis,
    signal_generation,
    technical_analysis,
)
from trading_app.steps.common import Params, SymbolsParams, broker_step, data_step, empty_scope, step_scope
from trading_app.steps.notifications import context_summary
from trading_app.steps.orders import TradeParams, trade_execution
from trading_app.steps.protection import HedgeParams, hedge
from workflows_app import operations
from workflows_app.errors import OperationError, PermanentStepError, TransientStepError
from workflows_app.registry import StepContext


class AnalyzeParams(SymbolsParams):
    threshold: float = Field(0.7, ge=0, le=1)


def _child(ctx: StepContext, model, handler, context: dict, **params) -> dict:
    sub = dataclasses.replace(ctx, params=model(**params), context=context)
    return handler(sub)


def analyze(ctx: StepContext) -> dict:
    """News, technicals and a signal for the symbols in scope (the one rule, ``common.step_scope``): the
    children get exactly those symbols (``fixed``), so they cannot narrow a second time and disagree."""
    p: AnalyzeParams = ctx.params
    scope = step_scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:  # the event's symbol is not among this action's symbols: nothing analysed, said so
        return empty_scope(scope, signal=None, confidence=None, symbol=None)
    context = dict(ctx.context or {})
    fixed = {"symbols": symbols, "symbols_mode": "fixed"}
    news = _child(ctx, NewsAnalysisParams, news_analysis, context, **fixed)
    context.update({"news": news, **news})
    tech = _child(ctx, TechnicalAnalysisParams, technical_analysis, context, **fixed)
    context.update({"technicals": tech, **tech})
    sig = _child(ctx, SignalParams, signal_generation, context, **fixed, threshold=p.threshold)
    return {"signal": sig["signal"], "confidence": sig["confidence"], "symbol": sig["symbol"],
            "sentiment": news["sentiment"], "rsi": tech.get("rsi"), "macd": tech.get("macd"),
            "by_symbol": {s: {**news["by_symbol"][s], **tech["by_symbol"][s], **sig["by_symbol"][s]} for s in symbols},
            "symbols": symbols, "symbol_scope": scope}


class QueueForExecutionParams(Params):
    queue: str = Field("trading-signals", max_length=100)


def queue_for_execution(ctx: StepContext) -> dict:
    p: QueueForExecutionParams = ctx.params
    message = {"type": "trade_signal", "execution_id": ctx.execution_id, "workflow_id": ctx.workflow_id,
               **context_summary(ctx)}
    if "signal" not in message:
        analysed = analyze(dataclasses.replace(ctx, params=AnalyzeParams()))
        if not analysed["symbols"]:  # nothing in scope: no signal to queue
            return {"queued": False, "queue": p.queue, "symbol_scope": analysed["symbol_scope"],
                    "note": analysed["note"]}
        message.update({k: analysed[k] for k in ("signal", "confidence", "symbol")})
    try:
        send = operations.queue_send  # the engine's catalogue entry (absent: no message queues)
    except AttributeError as exc:
        raise TransientStepError("message queues are not available", error_class="queue_unavailable") from exc
    try:
        reply = send(queue_name=p.queue, message=message, deduplication_id=f"{ctx.idempotency_key}:queued",
                     message_group_id=message.get("symbol") or "default")
    except OperationError as exc:
        if exc.code == "QUEUE_FULL":
            raise TransientStepError(exc.message, error_class="queue_full") from exc
        raise PermanentStepError(exc.message, error_class=exc.code.lower()) from exc
    return {"queued": True, "queue": p.queue, "message": message,
            **{k: v for k, v in reply.items() if k in ("message_id", "deduplicated")}}


def trade(ctx: StepContext) -> dict:
    context = dict(ctx.context or {})
    if str(context.get("signal", "")).upper() not in ("BUY", "SELL", "HOLD"):
        analysed = analyze(dataclasses.replace(ctx, params=AnalyzeParams()))
        context.update({"analysis": analysed, **analysed})
    return trade_execution(dataclasses.replace(ctx, params=TradeParams(), context=context))


def immediate_hedge(ctx: StepContext) -> dict:
    return hedge(dataclasses.replace(ctx, params=HedgeParams()))


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    broker_step("immediate_hedge", immediate_hedge, action=True, description="Action: hedge with default params."),
    data_step("analyze", analyze, AnalyzeParams, 120, action=True,
              description="Action: news + technicals + signal for the context's symbols."),
    data_step("queue_for_execution", queue_for_execution, QueueForExecutionParams, action=True,
              description="Action: send the context's signal to the trading-signals queue."),
    broker_step("trade", trade, action=True,
                description="Action: analyze if needed, then trade_execution with default params."),
)

"""One decision: a trigger firing on the simulated clock, run through the engine's own step types.

The steps run in order inside the backtest task (a parallel group's members one after another),
each as the engine runs it: the registry's handler, its params validated by the step type's
model, the ``condition`` evaluated by the engine's expressions, the output checked by the engine's
``output_problem`` and merged into the context by ``mergeable``. Not dispatched as a Celery chain
per decision: a year of daily decisions then takes seconds, not minutes, and the handlers, risk
checks and broker interface are the live ones. A step that fails ends the decision (no retries:
the data are deterministic) and is reported with its error class.
"""
from __future__ import annotations

from types import SimpleNamespace

from trading_app.providers import binding
from workflows_app import expressions
from workflows_app.definitions import execution_groups, step_type_name
from workflows_app.engine.outputs import mergeable, output_problem
from workflows_app.registry import StepContext, registry

# Step types a replay cannot run: they wait on people or time, start other workflows or send messages out.
UNSUPPORTED = frozenset({"subprocess", "wait", "approval", "queue_send", "circuit_breaker"})
KEPT = ("signal", "confidence", "score", "components", "sentiment", "rsi", "macd", "qty", "status", "symbols")


def unsupported_steps(definition: dict) -> list[str]:
    return [f"steps[{i}] ({step_type_name(s)})" for i, s in enumerate(definition["steps"])
            if step_type_name(s) in UNSUPPORTED]


def input_for(firing: dict) -> dict:
    """What ``fire()`` starts an execution with: the event, the trigger type and the event's symbols."""
    event = firing["event"]
    data = {"event": event, "trigger": (event.get("trigger") or {}).get("type") or event.get("kind")}
    symbols = event.get("symbols") or ([event["symbol"]] if event.get("symbol") else None)
    if symbols:
        data["symbols"] = list(symbols)
    return data


def run(definition: dict, *, execution_id: str, workflow_id: str, owner_id: int | None, input_data: dict) -> dict:
    """Run the steps; returns {"steps": {name: brief}, "context": ..., "error": ...}."""
    steps = definition["steps"]
    context = {k: v for k, v in input_data.items() if not str(k).startswith("_")}
    context["test_mode"] = True
    audit: list[dict] = []
    briefs: dict[str, dict] = {}
    holder = SimpleNamespace(test_mode=True, context=context)
    bound = binding.current()
    for group in execution_groups(steps):
        for index in group:
            step = steps[index]
            if bound is not None and hasattr(bound.broker, "forget"):
                bound.broker.forget()  # the ledger is read afresh by each step (BacktestBroker)
            name, type_name = step["name"], step_type_name(step)
            try:
                if step.get("condition") and not expressions.evaluate(step["condition"], context):
                    context[name] = {"matched": False, "condition": step["condition"]}
                    briefs[name] = {"skipped": True}
                    continue
                step_type = registry.get_step_type(type_name)
                ctx = StepContext(
                    execution_id=execution_id, workflow_id=workflow_id, workflow_name=definition["name"],
                    step_name=name, step_type=type_name,
                    params=step_type.params_model.model_validate(step.get("params", {})), context=dict(context),
                    input_data=dict(input_data), test_mode=True, attempt=1, owner_id=owner_id, steps=steps,
                    audit=lambda event, /, _n=name, **data: audit.append({"event": event, "step": _n, **data}))
                output = step_type.handler(ctx)
                output = output if isinstance(output, dict) else {"result": output}
                problem = output_problem(holder, step, output)
                if problem is not None:
                    raise problem
            except Exception as exc:  # noqa: BLE001 - the decision ends, reported with its error class
                info = registry.classify_error(exc)
                briefs[name] = {"error": str(exc)[:300], "error_class": info.error_class}
                return {"steps": briefs, "context": context, "error": f"{name}: {str(exc)[:300]}", "audit": audit}
            context[name] = output
            context.update(mergeable(step, output))
            briefs[name] = brief(output)
    return {"steps": briefs, "context": context, "error": None, "audit": audit}


def brief(output: dict) -> dict:
    """The signal inputs and sizing a trader reads, per step (bounded)."""
    out = {k: output[k] for k in KEPT if k in output and not isinstance(output[k], list | dict) or k == "components"
           and k in output}
    if isinstance(output.get("by_symbol"), dict):
        out["by_symbol"] = {s: {k: v for k, v in (row or {}).items() if k in KEPT and not isinstance(v, list | dict)}
                            for s, row in list(output["by_symbol"].items())[:20] if isinstance(row, dict)}
    orders = output.get("orders")
    if isinstance(orders, list) and orders:
        out["orders"] = [{k: o.get(k) for k in ("client_order_id", "symbol", "side", "qty", "type", "intent",
                                                "sizing")} for o in orders[:20]]
    return out

"""Providers bound to one run: a backtest's market data, news and broker, in this context only.

``get_market_data``, ``get_news_provider`` and ``accounts.broker_for`` return the bound ones while
``with bound(market_data=..., news=..., broker=...)`` is active, so the step handlers run unchanged
against a replay (views as of the simulated clock, a throw-away account). A ContextVar: other
threads and tasks of the same worker never see the binding.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    market_data: Any = None
    news: Any = None
    broker: Any = None


_BOUND: ContextVar[Bound | None] = ContextVar("nexus_bound_providers", default=None)


def current() -> Bound | None:
    return _BOUND.get()


class bound:
    def __init__(self, **providers):
        self.value, self.token = Bound(**providers), None

    def __enter__(self) -> Bound:
        self.token = _BOUND.set(self.value)
        return self.value

    def __exit__(self, *exc) -> None:
        _BOUND.reset(self.token)

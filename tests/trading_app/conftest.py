"""Fixtures of the trading tests: a clean simulator, no network, a bullish market (step contexts:
helpers.py)."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.trading_app.helpers import bullish_aapl


@pytest.fixture(autouse=True)
def _clean_trading_cache():
    """Each test starts with no injections / cached provider responses (test Redis db only)."""
    from trading_app.providers import simulated

    cache.delete_many([simulated.INJECTIONS_KEY, simulated.NEWS_KEY, simulated.GENERATION_KEY])
    try:
        cache.delete_pattern("trading:prov:*")  # django-redis style, when available
    except AttributeError:
        _delete_prefix("trading:prov:")
    yield


def _delete_prefix(prefix: str) -> None:
    client = cache._cache.get_client(None, write=True) if hasattr(cache, "_cache") else None
    if client is None:
        return
    full = cache.make_key(prefix)
    for key in client.scan_iter(match=f"{full}*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any real socket connection other than to Redis / the local DB fails the test."""
    import socket

    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise AssertionError(f"test tried to reach the network: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def bullish_market(settings):
    """Pin the simulator's clock and make AAPL a clear BUY (positive news, +2% jump): a deterministic run."""
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    bullish_aapl()

"""Fixtures for the trading tests: a clean simulator, step contexts, no network."""
from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from workflows_app.registry import StepContext, registry


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


def make_ctx(step_type: str, params: dict | None = None, *, context: dict | None = None,
             input_data: dict | None = None, test_mode: bool = True, execution_id: str | None = None,
             step_name: str | None = None, compensating: dict | None = None, attempt: int = 1) -> StepContext:
    st = registry.get_step_type(step_type)
    assert st is not None, f"step type {step_type} not registered"
    input_data = input_data or {}
    ctx_dict = {**input_data, **(context or {})}
    return StepContext(
        execution_id=execution_id or str(uuid.uuid4()), workflow_id=str(uuid.uuid4()), workflow_name="test-wf",
        step_name=step_name or step_type, step_type=step_type, params=st.params_model.model_validate(params or {}),
        context=ctx_dict, input_data=input_data, test_mode=test_mode, attempt=attempt, compensating=compensating,
    )


def run_step(step_type: str, params: dict | None = None, **kw) -> dict:
    ctx = make_ctx(step_type, params, **kw)
    return registry.get_step_type(step_type).handler(ctx)


@pytest.fixture
def ctx_factory():
    return make_ctx


@pytest.fixture
def step_runner():
    return run_step

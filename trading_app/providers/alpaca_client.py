"""What every Alpaca adapter shares: the keys, and ``AlpacaCaller._call``, which runs one alpaca-py call
and maps its failures to step errors.

The SDK's own 429 loop (3 tries, 3 s sleeps inside a worker) is switched off (``no_sdk_retry``);
``_call`` retries a 429/503 at most ``NEXUS_PROVIDER_RETRY_ATTEMPTS`` times with a short wait
(honouring ``Retry-After`` up to ``NEXUS_PROVIDER_RETRY_MAX_WAIT``), then raises a transient step
error so the engine's backoff takes over.

alpaca-py is imported inside the functions that use it throughout the Alpaca adapters: it is an
optional, heavy SDK that only deployments configured for Alpaca ever load.
"""
from __future__ import annotations

import time

import requests

from trading_app import conf
from trading_app.errors import from_http
from trading_app.providers.http import with_timeouts
from workflows_app.errors import PermanentStepError, TransientStepError


def api_error():
    from alpaca.common.exceptions import APIError  # alpaca-py: optional and heavy, loaded on first use

    return APIError


def no_sdk_retry(client):
    client._retry = 0  # one attempt per call: retries are ours (bounded) or the engine's
    if isinstance(getattr(client, "_session", None), requests.Session):
        with_timeouts(client._session)
    return client


def require_keys(what: str) -> tuple[str, str]:
    key, secret = conf.alpaca_keys()
    if not (key and secret):
        raise PermanentStepError(f"{what}: APCA_API_KEY_ID / APCA_API_SECRET_KEY are not set",
                                 error_class="config_error")
    return key, secret


class AlpacaCaller:
    sleep = staticmethod(time.sleep)

    def _call(self, what: str, fn):
        """Run one SDK call; map its failures to step errors (429/503 retried a little first)."""
        APIError = api_error()  # noqa: N806
        attempts = 1 + max(0, int(conf.get("NEXUS_PROVIDER_RETRY_ATTEMPTS")))
        max_wait = float(conf.get("NEXUS_PROVIDER_RETRY_MAX_WAIT"))
        for attempt in range(attempts):
            try:
                return fn()
            except APIError as exc:
                response = exc.response
                status = exc.status_code
                err = from_http(status, response.text if response is not None else str(exc), what=what,
                                response=response)
                if status in (429, 503) and attempt + 1 < attempts:
                    wait = err.retry_after if err.retry_after is not None else 0.25 * 2 ** attempt
                    if wait <= max_wait:
                        self.sleep(wait)
                        continue
                raise err from exc
            except requests.exceptions.Timeout as exc:
                raise TransientStepError(f"{what}: timeout", error_class="timeout") from exc
            except requests.exceptions.ConnectionError as exc:
                raise TransientStepError(f"{what}: connection error", error_class="connection") from exc
            except ValueError as exc:  # a 200 with a body that is not what the SDK expects
                raise TransientStepError(f"{what}: unreadable response ({exc})", error_class="server_error") from exc
        raise AssertionError("unreachable")  # pragma: no cover

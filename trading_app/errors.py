"""Maps provider and broker failures to the engine's error classes.

| failure | error_class | transient |
|---|---|---|
| HTTP 429, NewsAPI ``rateLimited`` | rate_limit | yes |
| HTTP 5xx (incl. a non-JSON 502 page), 408, timeouts | server_error / timeout | yes |
| connection errors | connection | yes |
| unknown / unlisted symbol (Alpaca 404/422 "asset not found", "invalid symbol") | invalid_symbol | no |
| broker refusal (403 buying power, 422 other) | broker_rejected | no |
| 401 / NewsAPI apiKey* | auth_error | no |

``classify(exc)`` is registered with the engine; the adapters use ``from_http`` to raise
``TransientStepError`` / ``PermanentStepError`` themselves. A duplicate ``client_order_id`` is not
an error: the Alpaca adapter resolves it by looking the order up.
"""
from __future__ import annotations

import json
import re

from workflows_app.errors import PermanentStepError, StepError, TransientStepError
from workflows_app.registry import ErrorInfo

SYMBOL_HINT = re.compile(r"(asset|symbol).*(not found|invalid|unknown|not.*tradable)|invalid symbol|"
                         r"could not find asset|unknown symbol", re.I)
DUPLICATE_HINT = re.compile(r"client_order_id must be unique|duplicate client_order_id|client_order_id.*exists", re.I)


def body_message(text: str | None) -> tuple[str, str | int | None]:
    """(message, code) from an error body that may be JSON, HTML or empty."""
    if not text:
        return "", None
    try:
        data = json.loads(text)
    except ValueError:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()[:300], None
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:300], data.get("code")
    return str(data)[:300], None


def info_for_status(status: int | None, message: str = "", retry_after: float | None = None) -> ErrorInfo:
    if status == 429:
        return ErrorInfo("rate_limit", True, retry_after)
    if status is not None and (status >= 500 or status == 408):
        return ErrorInfo("timeout" if status in (408, 504) else "server_error", True, retry_after)
    if SYMBOL_HINT.search(message or ""):
        return ErrorInfo("invalid_symbol", False)
    if status == 401:
        return ErrorInfo("auth_error", False)
    if status in (403, 422, 400, 409):
        return ErrorInfo("broker_rejected", False)
    if status == 404:
        return ErrorInfo("not_found", False)
    return ErrorInfo("http_error", False)


def to_step_error(info: ErrorInfo, message: str) -> StepError:
    cls = TransientStepError if info.transient else PermanentStepError
    return cls(message, error_class=info.error_class, retry_after=info.retry_after)


def retry_after_of(response) -> float | None:
    try:
        value = response.headers.get("Retry-After") if response is not None else None
        return float(value) if value else None
    except (TypeError, ValueError):
        return None


def from_http(status: int | None, text: str | None, *, what: str, response=None) -> StepError:
    message, code = body_message(text)
    info = info_for_status(status, message, retry_after_of(response))
    detail = message or "(empty error body)"
    return to_step_error(info, f"{what}: HTTP {status} {detail}" + (f" (code {code})" if code else ""))


def newsapi_info(code: str | None) -> ErrorInfo:
    if code == "rateLimited":
        return ErrorInfo("rate_limit", True, 60.0)
    if code in ("apiKeyDisabled", "apiKeyExhausted", "apiKeyInvalid", "apiKeyMissing"):
        return ErrorInfo("auth_error", False)
    if code == "unexpectedError":
        return ErrorInfo("server_error", True)
    return ErrorInfo("news_api_error", False)


def classify(exc: BaseException) -> ErrorInfo | None:
    """Engine error classifier for library exceptions that escape the adapters."""
    try:
        from alpaca.common.exceptions import APIError
    except ImportError:  # pragma: no cover
        APIError = ()  # noqa: N806
    if APIError and isinstance(exc, APIError):
        response = exc.response
        text = response.text if response is not None else str(exc)
        return info_for_status(exc.status_code, body_message(text)[0], retry_after_of(response))
    try:
        from newsapi.newsapi_exception import NewsAPIException

        if isinstance(exc, NewsAPIException):
            data = exc.get_exception() if isinstance(exc.get_exception(), dict) else {}
            return newsapi_info(data.get("code"))
    except ImportError:  # pragma: no cover
        pass
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return ErrorInfo("timeout", True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ErrorInfo("connection", True)
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return info_for_status(exc.response.status_code, body_message(exc.response.text)[0],
                               retry_after_of(exc.response))
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return ErrorInfo("server_error", True)
    return None

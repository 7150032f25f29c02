"""One error body for the whole REST face: ``{"success": false, "error": {"code", "message", "details"}}``.

HTTP status per code (see ``STATUS``; docs/api.md has the full table):

- 400 INVALID_INPUT_DATA (bad field, query parameter or JSON)
- 401 NOT_AUTHENTICATED, AUTHENTICATION_FAILED
- 403 PERMISSION_DENIED
- 404 *_NOT_FOUND, NOT_FOUND
- 405 METHOD_NOT_ALLOWED
- 409 CONFLICT
- 413 PAYLOAD_TOO_LARGE
- 415 UNSUPPORTED_MEDIA_TYPE
- 422 INVALID_DEFINITION (well-formed JSON, but the definition does not validate)
- 429 THROTTLED, QUEUE_FULL (back off; Retry-After)
- 503 BROKER_UNAVAILABLE (trading endpoints)
- 504 EXECUTION_TIMEOUT (async=false gave up waiting; the execution goes on)

Anything unexpected is logged (without the request body: it may hold secrets) and answered with
the same body, code INTERNAL_ERROR, status 500.
"""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import DataError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from workflows_app.errors import OperationError

logger = logging.getLogger("nexus.api")

STATUS = {
    "INVALID_INPUT_DATA": 400,
    "INVALID_DEFINITION": 422,
    "NOT_AUTHENTICATED": 401,
    "AUTHENTICATION_FAILED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "WORKFLOW_NOT_FOUND": 404,
    "EXECUTION_NOT_FOUND": 404,
    "QUEUE_NOT_FOUND": 404,
    "DEAD_LETTER_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "NOT_ACCEPTABLE": 406,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "THROTTLED": 429,
    "QUEUE_FULL": 429,
    "BROKER_UNAVAILABLE": 503,
    "EXECUTION_TIMEOUT": 504,
    "INTERNAL_ERROR": 500,
}

_DRF_CODES = {
    exceptions.ParseError: "INVALID_INPUT_DATA",
    exceptions.ValidationError: "INVALID_INPUT_DATA",
    exceptions.NotAuthenticated: "NOT_AUTHENTICATED",
    exceptions.AuthenticationFailed: "AUTHENTICATION_FAILED",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "THROTTLED",
}


def status_for(code: str) -> int:
    if code.endswith("_NOT_FOUND"):
        return 404
    return STATUS.get(code, 400)


def body(code: str, message: str, details=None) -> dict:
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}


def _flatten(detail, prefix: str = "") -> list[dict]:
    """DRF's nested ValidationError detail -> [{"field": "a.b.0", "message": "..."}]."""
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            field = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            errors.extend(_flatten(value, field))
        return errors
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": prefix or None, "message": str(item)} for item in detail]
        errors = []
        for index, item in enumerate(detail):
            if item:
                errors.extend(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return errors
    return [{"field": prefix or None, "message": str(detail)}]


def _drf_error(exc: exceptions.APIException) -> tuple[str, str, dict]:
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "message": "invalid input"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        details = {"field": first["field"], "errors": errors} if first["field"] else {"errors": errors}
        return "INVALID_INPUT_DATA", message, details
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait) + 1 if exc.wait is not None else None
        return "THROTTLED", "too many requests; retry later", {"retry_after": wait}
    message = str(exc.detail) if not isinstance(exc.detail, list | dict) else str(exc.default_detail)
    return code or str(exc.default_code).upper(), message, {}


def exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every exception raised in an API view becomes the one error body."""
    headers = {}
    if isinstance(exc, OperationError):
        code, message, details = exc.code, exc.message, exc.details
        status = status_for(code)
    elif isinstance(exc, exceptions.APIException | Http404 | DjangoPermissionDenied):
        if isinstance(exc, Http404):
            exc = exceptions.NotFound()
        elif isinstance(exc, DjangoPermissionDenied):
            exc = exceptions.PermissionDenied()
        code, message, details = _drf_error(exc)
        status = exc.status_code
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait) + 1)
    elif isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        code, message, details, status = "PAYLOAD_TOO_LARGE", "request body too large", {}, 413
    elif isinstance(exc, SuspiciousOperation):
        code, message, details, status = "INVALID_INPUT_DATA", "malformed request", {}, 400
    elif isinstance(exc, DataError):
        # e.g. a NUL byte or an out-of-range number the database refuses: the input's fault
        code, message, details, status = "INVALID_INPUT_DATA", "the database refused a value of this request", {}, 400
    else:
        request = context.get("request")
        logger.exception("unhandled error in %s %s", getattr(request, "method", "?"), getattr(request, "path", "?"))
        code, message, details, status = "INTERNAL_ERROR", "internal error", {}, 500
    if status == 429 and code == "QUEUE_FULL":
        headers.setdefault("Retry-After", "1")
    set_rollback()
    return Response(body(code, message, details), status=status, headers=headers)


# --- Django-level handlers (URL not matched, crash outside a DRF view) ----------------------------


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse(body("NOT_FOUND", f"no such path: {request.path[:200]}"), status=404)
    return defaults.page_not_found(request, exception)


def handler400(request, exception=None):
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig | TooManyFieldsSent):
            return JsonResponse(body("PAYLOAD_TOO_LARGE", "request body too large"), status=413)
        return JsonResponse(body("INVALID_INPUT_DATA", "malformed request"), status=400)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return JsonResponse(body("PERMISSION_DENIED", "permission denied"), status=403)
    return defaults.permission_denied(request, exception)


def handler500(request):
    if _is_api(request):
        return JsonResponse(body("INTERNAL_ERROR", "internal error"), status=500)
    return defaults.server_error(request)


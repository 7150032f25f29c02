"""drf-spectacular post-processing: every operation documents the one error body.

Views may document their specific error responses; this hook adds the ones any endpoint can give
(400 bad input, 401 no user, 403 refused, 404 unknown object, 405 wrong method, 413 body too
large, 415 not JSON, 429 throttled) wherever they are missing, all with ``ErrorResponse``.
"""
from __future__ import annotations

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
COMMON = {
    "400": "Invalid input (INVALID_INPUT_DATA).",
    "401": "Not authenticated.",
    "403": "Permission denied.",
    "404": "Not found (or not yours).",
    "405": "Method not allowed.",
    "413": "Request body too large.",
    "415": "Unsupported media type: send JSON.",
    "429": "Throttled.",
}
ERROR_COMPONENT = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean", "default": False},
        "error": {"type": "object", "properties": {
            "code": {"type": "string", "description": "e.g. WORKFLOW_NOT_FOUND, INVALID_INPUT_DATA"},
            "message": {"type": "string"},
            "details": {"description": "Object; `field` names the offending field when there is one."},
        }, "required": ["code", "message", "details"]},
    },
    "required": ["success", "error"],
}


def add_error_responses(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorResponse", ERROR_COMPONENT)
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, text in COMMON.items():
                responses.setdefault(code, {"description": text,
                                            "content": {"application/json": {"schema": ERROR_REF}}})
    return result

"""``/mcp``: the MCP server over streamable HTTP, inside Django, with DRF token auth.

Each POST is handed to the SDK's streamable-HTTP transport in stateless JSON mode (one request,
one JSON reply: no server-held sessions, so any web worker can answer any request), bridged from the
Django request to ASGI and back. This works under ASGI and WSGI alike. The caller is the user of
the token in ``Authorization: Token <key>`` (or ``Bearer <key>``); tools then see and change only
that user's workflows unless the user is staff.
"""
from __future__ import annotations

import anyio
from asgiref.sync import sync_to_async
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from rest_framework.authtoken.models import Token

from workflows_app.mcp_server import build_server, current_user

MAX_BODY = 4 * 1024 * 1024


def _user_for(authorization: str):
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() not in ("token", "bearer"):
        return None
    token = Token.objects.select_related("user").filter(key=parts[1][:64]).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _refuse(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"success": False, "error": {"code": code, "message": message, "details": {}}},
                            status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Token realm="nexus-mcp"'
    return response


def _scope(request) -> dict:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    host, _, port = request.get_host().partition(":")
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
        "scheme": request.scheme, "path": request.path, "raw_path": request.path.encode(), "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode(), "headers": headers,
        "server": (host, int(port) if port.isdigit() else (443 if request.is_secure() else 80)),
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
    }


async def _serve(request, user) -> HttpResponse:
    body = request.body
    sent_body = False
    done = anyio.Event()
    start: dict = {}
    chunks: list[bytes] = []

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    manager = StreamableHTTPSessionManager(app=build_server(), json_response=True, stateless=True)
    token = current_user.set(user)
    try:
        async with manager.run():
            await manager.handle_request(_scope(request), receive, send)
    finally:
        current_user.reset(token)
        done.set()
    response = HttpResponse(b"".join(chunks), status=start.get("status", 500))
    for name, value in start.get("headers", []):
        key = name.decode("latin-1")
        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
            response[key] = value.decode("latin-1")
    return response


@csrf_exempt
async def mcp_endpoint(request):
    authorization = request.headers.get("Authorization", "")
    user = await sync_to_async(_user_for)(authorization) if authorization else None
    if user is None:
        return _refuse(401, "PERMISSION_DENIED", "send a DRF token: Authorization: Token <key>")
    if request.method not in ("POST", "GET", "DELETE"):
        return _refuse(405, "INVALID_INPUT_DATA", "POST JSON-RPC messages to /mcp")
    if request.method != "POST":
        # Stateless: no server-held session to stream from (GET) or to end (DELETE).
        return HttpResponse(status=405, headers={"Allow": "POST"})
    if len(request.body) > MAX_BODY:
        return _refuse(413, "INVALID_INPUT_DATA", "request body too large")
    return await _serve(request, user)

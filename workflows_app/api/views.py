"""REST views: parse the request, call the operation with ``user=request.user``, return its dict.

No logic lives here: every rule (ownership, validation of definitions, state changes) is in
``workflows_app.operations``; errors become the one error body in ``workflows_app.api.errors``.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, ParseError
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows_app import operations
from workflows_app.api import serializers as s
from workflows_app.api.parsers import JSONBodyParser, has_nul
from workflows_app.api.throttles import LoginRateThrottle, WebhookRateThrottle, WriteRateThrottle

OK = OpenApiResponse(OpenApiTypes.OBJECT, description='The operation\'s reply: `{"success": true, ...}`.')


def errors(*codes: int) -> dict:
    """Error responses documented for an endpoint (all share the one error body)."""
    text = {400: "Invalid input (INVALID_INPUT_DATA).", 401: "Not authenticated.", 403: "Permission denied.",
            404: "Not found (or not yours).", 409: "Conflict with the current state.",
            413: "Request body too large.", 415: "Unsupported media type.",
            422: "The workflow definition does not validate (INVALID_DEFINITION).",
            429: "Throttled, or the queue is full (QUEUE_FULL).",
            504: "async=false gave up waiting (EXECUTION_TIMEOUT); the execution keeps running."}
    return {code: OpenApiResponse(s.ErrorResponse, description=text.get(code, "")) for code in (400, 401, *codes)}


READ_ERRORS = errors(404)
WRITE_ERRORS = errors(403, 404, 409, 413, 415, 429)

WORKFLOW_ID = OpenApiParameter("workflow_id", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="The workflow's uuid or its name.")
EXECUTION_ID = OpenApiParameter("execution_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class OperationView(APIView):
    parser_classes = [JSONBodyParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [WriteRateThrottle]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if has_nul(kwargs) or has_nul(dict(request.query_params.lists())):
            raise ParseError("path and query parameters may not contain NUL characters")

    def call(self, operation, status: int = 200, /, **kwargs) -> Response:
        """``operation`` is read from ``workflows_app.operations`` at request time (a catalogue entry)."""
        return Response(operation(user=self.request.user, **kwargs), status=status)

    def body(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.args()

    def query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        return serializer.args()


# --- workflows --------------------------------------------------------------------------------


class WorkflowListView(OperationView):
    @extend_schema(operation_id="workflow_list", tags=["workflows"], parameters=[s.WorkflowListQuery],
                   responses={200: s.WorkflowList, **errors()},
                   summary="List workflows (limit/offset pagination, status filter)")
    def get(self, request):
        args = self.query(s.WorkflowListQuery)
        reply = operations.workflow_list(user=request.user, **args)
        # Pagination links for convenience; the counts come from the operation.
        limit, offset, total = reply["limit"], reply["offset"], reply["total"]
        base = request.build_absolute_uri(request.path)
        kept = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        extra = f"&{urlencode(kept)}" if kept else ""
        reply["next"] = f"{base}?limit={limit}&offset={offset + limit}{extra}" if offset + limit < total else None
        reply["previous"] = f"{base}?limit={limit}&offset={max(offset - limit, 0)}{extra}" if offset > 0 else None
        return Response(reply)

    @extend_schema(operation_id="workflow_create", tags=["workflows"], request=s.WorkflowCreateRequest,
                   responses={201: s.WorkflowCreated, **errors(403, 409, 413, 415, 422, 429)},
                   summary="Create a workflow")
    def post(self, request):
        return self.call(operations.workflow_create, 201, **self.body(s.WorkflowCreateRequest))


class WorkflowDetailView(OperationView):
    @extend_schema(operation_id="workflow_get", tags=["workflows"], parameters=[WORKFLOW_ID],
                   responses={200: OK, **READ_ERRORS})
    def get(self, request, workflow_id):
        return self.call(operations.workflow_get, workflow_id=workflow_id)

    @extend_schema(operation_id="workflow_patch", tags=["workflows"], parameters=[WORKFLOW_ID],
                   request=s.WorkflowPatchRequest, responses={200: OK, **WRITE_ERRORS, **errors(422)},
                   summary="Change whole fields (each is a workflow_update path; a new version)")
    def patch(self, request, workflow_id):
        updates = self.body(s.WorkflowPatchRequest)
        expected = updates.pop("expected_version", None)
        return self.call(operations.workflow_update, workflow_id=workflow_id, updates=updates, expected_version=expected)

    @extend_schema(operation_id="workflow_delete", tags=["workflows"], parameters=[WORKFLOW_ID],
                   request=None, responses={200: OK, **WRITE_ERRORS})
    def delete(self, request, workflow_id):
        return self.call(operations.workflow_delete, workflow_id=workflow_id)


class WorkflowExecuteView(OperationView):
    @extend_schema(operation_id="workflow_execute", tags=["workflows"], parameters=[WORKFLOW_ID],
                   request=s.WorkflowExecuteRequest,
                   responses={200: OpenApiResponse(s.ExecutionStarted, description="Finished (async=false)."),
                              202: OpenApiResponse(s.ExecutionStarted, description="Started (async)."),
                              **WRITE_ERRORS, **errors(504)},
                   summary="Execute a workflow (async by default; async=false waits for the result)")
    def post(self, request, workflow_id):
        args = self.body(s.WorkflowExecuteRequest)
        reply = operations.workflow_execute(user=request.user, workflow_id=workflow_id, **args)
        return Response(reply, status=202 if reply.get("async", True) else 200)


class WorkflowStatusView(OperationView):
    @extend_schema(operation_id="workflow_status", tags=["workflows"], parameters=[WORKFLOW_ID, s.StatusQuery],
                   responses={200: OK, **READ_ERRORS})
    def get(self, request, workflow_id):
        return self.call(operations.workflow_status, workflow_id=workflow_id, **self.query(s.StatusQuery))


class WorkflowUpdateView(OperationView):
    @extend_schema(operation_id="workflow_update", tags=["workflows"], parameters=[WORKFLOW_ID],
                   request=s.WorkflowUpdateRequest, responses={200: OK, **WRITE_ERRORS, **errors(422)},
                   summary="Update by paths (atomic, validated, a new version)")
    def post(self, request, workflow_id):
        return self.call(operations.workflow_update, workflow_id=workflow_id, **self.body(s.WorkflowUpdateRequest))


class WorkflowPauseView(OperationView):
    @extend_schema(operation_id="workflow_pause", tags=["workflows"], parameters=[WORKFLOW_ID], request=None,
                   responses={200: OK, **WRITE_ERRORS})
    def post(self, request, workflow_id):
        return self.call(operations.workflow_pause, workflow_id=workflow_id)


class WorkflowResumeView(OperationView):
    @extend_schema(operation_id="workflow_resume", tags=["workflows"], parameters=[WORKFLOW_ID], request=None,
                   responses={200: OK, **WRITE_ERRORS})
    def post(self, request, workflow_id):
        return self.call(operations.workflow_resume, workflow_id=workflow_id)


class WorkflowMetricsView(OperationView):
    @extend_schema(operation_id="workflow_metrics", tags=["workflows"], parameters=[WORKFLOW_ID, s.MetricsQuery],
                   responses={200: s.WorkflowMetricsReply, **READ_ERRORS})
    def get(self, request, workflow_id):
        return self.call(operations.workflow_metrics, workflow_id=workflow_id, **self.query(s.MetricsQuery))


class WorkflowAuditView(OperationView):
    @extend_schema(operation_id="workflow_audit_trail", tags=["workflows"], parameters=[WORKFLOW_ID, s.AuditQuery],
                   responses={200: s.AuditTrail, **READ_ERRORS})
    def get(self, request, workflow_id):
        return self.call(operations.workflow_audit_trail, workflow_id=workflow_id, **self.query(s.AuditQuery))


class WorkflowAgentsView(OperationView):
    @extend_schema(operation_id="workflow_agent_assign", tags=["workflows"], parameters=[WORKFLOW_ID],
                   request=s.AgentAssignRequest, responses={200: OK, **WRITE_ERRORS})
    def post(self, request, workflow_id):
        return self.call(operations.workflow_agent_assign, workflow_id=workflow_id, **self.body(s.AgentAssignRequest))


# --- executions -------------------------------------------------------------------------------


class ExecutionDetailView(OperationView):
    @extend_schema(operation_id="execution_status", tags=["executions"], parameters=[EXECUTION_ID, s.StatusQuery],
                   responses={200: OK, **READ_ERRORS})
    def get(self, request, execution_id):
        return self.call(operations.workflow_status, execution_id=execution_id, **self.query(s.StatusQuery))


class ExecutionAuditView(OperationView):
    @extend_schema(operation_id="execution_audit_trail", tags=["executions"],
                   parameters=[EXECUTION_ID, s.AuditQuery], responses={200: s.AuditTrail, **READ_ERRORS})
    def get(self, request, execution_id):
        return self.call(operations.workflow_audit_trail, execution_id=execution_id, **self.query(s.AuditQuery))


class ExecutionCancelView(OperationView):
    @extend_schema(operation_id="execution_cancel", tags=["executions"], parameters=[EXECUTION_ID], request=None,
                   responses={200: OK, **WRITE_ERRORS})
    def post(self, request, execution_id):
        return self.call(operations.execution_cancel, execution_id=execution_id)


class ExecutionRetryView(OperationView):
    @extend_schema(operation_id="execution_retry", tags=["executions"], parameters=[EXECUTION_ID], request=None,
                   responses={200: OK, **WRITE_ERRORS})
    def post(self, request, execution_id):
        return self.call(operations.execution_retry, execution_id=execution_id)


class ExecutionApproveView(OperationView):
    @extend_schema(operation_id="execution_approve", tags=["executions"], parameters=[EXECUTION_ID],
                   request=s.DecisionBody, responses={200: OK, **WRITE_ERRORS})
    def post(self, request, execution_id):
        return self.call(operations.execution_approve, execution_id=execution_id, **self.body(s.DecisionBody))


class ExecutionRejectView(OperationView):
    @extend_schema(operation_id="execution_reject", tags=["executions"], parameters=[EXECUTION_ID],
                   request=s.DecisionBody, responses={200: OK, **WRITE_ERRORS})
    def post(self, request, execution_id):
        return self.call(operations.execution_reject, execution_id=execution_id, **self.body(s.DecisionBody))


class ExecutionRerunView(OperationView):
    @extend_schema(operation_id="execution_rerun", tags=["executions"], parameters=[EXECUTION_ID],
                   request=s.ExecutionRerunRequest, responses={200: OK, **WRITE_ERRORS})
    def post(self, request, execution_id):
        return self.call(operations.execution_rerun, execution_id=execution_id, **self.body(s.ExecutionRerunRequest))


class ExecutionTimelineView(OperationView):
    @extend_schema(operation_id="execution_timeline", tags=["executions"], parameters=[EXECUTION_ID],
                   responses={200: OK, **READ_ERRORS})
    def get(self, request, execution_id):
        return self.call(operations.execution_timeline, execution_id=execution_id)


# --- events (the signed webhook), agents, system metrics --------------------------------------


class EventWebhookView(OperationView):
    """HMAC-signed webhook: no user; the signature over the raw body is the authentication."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [WebhookRateThrottle]
    parser_classes: list = []  # the raw body is read as bytes: the signature covers it exactly

    @extend_schema(
        operation_id="webhook_receive", tags=["events"], auth=[],
        parameters=[
            OpenApiParameter("X-Nexus-Source", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
                             description="Which configured webhook source sent this."),
            OpenApiParameter("X-Nexus-Timestamp", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
                             description="Unix seconds; old timestamps are refused (replay window)."),
            OpenApiParameter("X-Nexus-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
                             description='Hex HMAC-SHA256 of "<timestamp>.<raw body>" with the source\'s '
                                         'secret (an optional "sha256=" prefix is accepted).'),
        ],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={202: OK, **errors(403, 404, 409, 413, 429)},
    )
    def post(self, request):
        reply = operations.webhook_receive(
            source=request.headers.get("X-Nexus-Source", ""), body=request.body,
            signature=request.headers.get("X-Nexus-Signature", ""),
            timestamp=request.headers.get("X-Nexus-Timestamp", ""))
        return Response(reply, status=202)


class EventIngestView(OperationView):
    permission_classes = [IsAdminUser]

    @extend_schema(operation_id="event_ingest", tags=["events"], request=s.EventIngestRequest,
                   responses={202: OK, **WRITE_ERRORS},
                   summary="A manual event (staff): through the events queue, matched against triggers")
    def post(self, request):
        return self.call(operations.event_ingest, 202, **self.body(s.EventIngestRequest))


class TokenView(OperationView):
    """Exchange a username and password for the user's API token (``Authorization: Token <key>``)."""

    authentication_classes = [TokenAuthentication]  # none needed; gives failures their 401 + WWW-Authenticate
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]

    @extend_schema(operation_id="auth_token", tags=["auth"], auth=[], request=s.TokenRequest,
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"success": true, "token": "..."}'),
                              **errors(429)})
    def post(self, request):
        args = self.body(s.TokenRequest)
        user = authenticate(request=request._request, username=args["username"], password=args["password"])
        if user is None or not user.is_active:
            raise AuthenticationFailed("invalid username or password")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"success": True, "token": token.key, "username": user.get_username()})


class AgentListView(OperationView):
    @extend_schema(operation_id="agent_list", tags=["agents"], responses={200: OK, **errors()})
    def get(self, request):
        return self.call(operations.agent_list)


class SystemMetricsView(OperationView):
    @extend_schema(operation_id="system_metrics", tags=["metrics"], parameters=[s.MetricsQuery],
                   responses={200: s.WorkflowMetricsReply, **errors()}, summary="workflow_metrics across all (visible) workflows")
    def get(self, request):
        return self.call(operations.workflow_metrics, **self.query(s.MetricsQuery))

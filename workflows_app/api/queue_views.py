"""REST views of the queues and the dead letters: thin calls of their operations (see views.py)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import SAFE_METHODS, BasePermission

from workflows_app import operations
from workflows_app.api import serializers as s
from workflows_app.api.views import OK, READ_ERRORS, WRITE_ERRORS, OperationView, errors

# --- queues -----------------------------------------------------------------------------------

QUEUE_NAME = OpenApiParameter("queue_name", OpenApiTypes.STR, OpenApiParameter.PATH)


class StaffWrites(BasePermission):
    """Queues are shared by every workflow: any user reads their status; only staff configure,
    send to, receive from or acknowledge on them (a send to `events` can fire anyone's triggers)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (request.method in SAFE_METHODS or user.is_staff))


class QueueView(OperationView):
    permission_classes = [StaffWrites]


class QueueStatusView(QueueView):
    @extend_schema(operation_id="workflow_queue_status", tags=["queues"], parameters=[s.QueueStatusQuery],
                   responses={200: s.QueueStatus, **READ_ERRORS},
                   summary="Live status of every named queue (or one, with queue_name)")
    def get(self, request):
        return self.call(operations.workflow_queue_status, **self.query(s.QueueStatusQuery))

    @extend_schema(operation_id="queue_create", tags=["queues"], request=s.QueueCreateRequest,
                   responses={200: OK, **WRITE_ERRORS}, summary="Create or reconfigure a named queue")
    def post(self, request):
        return self.call(operations.queue_create, **self.body(s.QueueCreateRequest))


class QueueDetailView(QueueView):
    @extend_schema(operation_id="queue_status", tags=["queues"], parameters=[QUEUE_NAME, s.QueueMessagesQuery],
                   responses={200: OK, **READ_ERRORS})
    def get(self, request, queue_name):
        return self.call(operations.workflow_queue_status, queue_name=queue_name, **self.query(s.QueueMessagesQuery))


class QueueMessagesView(QueueView):
    @extend_schema(operation_id="queue_messages", tags=["queues"], parameters=[QUEUE_NAME, s.QueueMessagesQuery],
                   responses={200: OK, **READ_ERRORS},
                   summary="The queue's status with its messages (a read: nothing is received)")
    def get(self, request, queue_name):
        args = {"include_messages": True, **self.query(s.QueueMessagesQuery)}
        return self.call(operations.workflow_queue_status, queue_name=queue_name, **args)

    @extend_schema(operation_id="queue_send", tags=["queues"], parameters=[QUEUE_NAME], request=s.QueueSendRequest,
                   responses={201: OK, **WRITE_ERRORS}, summary="Send a message to the queue")
    def post(self, request, queue_name):
        return self.call(operations.queue_send, 201, queue_name=queue_name, **self.body(s.QueueSendRequest))


class QueueReceiveView(QueueView):
    @extend_schema(operation_id="queue_receive", tags=["queues"], parameters=[QUEUE_NAME],
                   request=s.QueueReceiveRequest, responses={200: OK, **WRITE_ERRORS},
                   summary="Receive messages (invisible for visibility_timeout until acknowledged)")
    def post(self, request, queue_name):
        return self.call(operations.queue_receive, queue_name=queue_name, **self.body(s.QueueReceiveRequest))


class QueueAckView(QueueView):
    @extend_schema(operation_id="queue_ack", tags=["queues"], parameters=[QUEUE_NAME], request=s.QueueAckRequest,
                   responses={200: OK, **WRITE_ERRORS}, summary="Acknowledge received messages")
    def post(self, request, queue_name):
        return self.call(operations.queue_ack, queue_name=queue_name, **self.body(s.QueueAckRequest))


# --- dead letters -----------------------------------------------------------------------------


class DeadLetterListView(OperationView):
    @extend_schema(operation_id="dead_letters", tags=["dead-letters"], parameters=[s.DeadLetterQuery],
                   responses={200: OK, **errors()})
    def get(self, request):
        return self.call(operations.dead_letters, **self.query(s.DeadLetterQuery))


class DeadLetterRedriveView(OperationView):
    @extend_schema(operation_id="dead_letter_redrive", tags=["dead-letters"],
                   parameters=[OpenApiParameter("dead_letter_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
                   request=None, responses={200: OK, **WRITE_ERRORS})
    def post(self, request, dead_letter_id):
        return self.call(operations.dead_letter_redrive, dead_letter_id=str(dead_letter_id))


class DeadLetterBulkRedriveView(OperationView):
    @extend_schema(operation_id="dead_letter_redrive_many", tags=["dead-letters"], request=s.DeadLetterRedriveRequest,
                   responses={200: OK, **WRITE_ERRORS})
    def post(self, request):
        return self.call(operations.dead_letter_redrive, **self.body(s.DeadLetterRedriveRequest))


class DeadLetterProcessView(OperationView):
    @extend_schema(operation_id="process_dead_letters", tags=["dead-letters"], request=s.DeadLetterProcessRequest,
                   responses={200: OK, **WRITE_ERRORS},
                   summary="Apply the per-error-class policies (retry / discard / alert) now")
    def post(self, request):
        return self.call(operations.process_dead_letters, **self.body(s.DeadLetterProcessRequest))

"""Request shapes of the REST face: they check types and document the API (OpenAPI); the
operations check everything else (definitions against step/trigger schemas, ownership, ranges).
"""
from __future__ import annotations

from rest_framework import serializers

from workflows_app.api.definition_fields import StepField, TriggerField
from workflows_app.models import DeadLetter, Workflow

MAX_TEXT = 10_000


class Strict(serializers.Serializer):
    """Unknown fields are refused (as the operations refuse unknown arguments)."""

    def validate(self, attrs):
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0][:100]: ["unknown field"]})
        return attrs

    def args(self) -> dict:
        """Validated data, only the fields the client gave (operations keep their own defaults)."""
        return dict(self.validated_data)


class AnyJSON(serializers.JSONField):
    pass


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. WORKFLOW_NOT_FOUND, INVALID_INPUT_DATA.")
    message = serializers.CharField()
    details = serializers.JSONField(help_text="Object; `field` names the offending field when there is one.")


class ErrorResponse(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = ErrorDetail()


class TokenRequest(Strict):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


# --- workflows --------------------------------------------------------------------------------


class WorkflowCreateRequest(Strict):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    steps = serializers.ListField(child=StepField(), max_length=200,
                                  help_text="Steps: {name, type, params, condition, actions, group, retry, "
                                            "timeout, compensate, agent, workflow_id}.")
    triggers = serializers.ListField(child=TriggerField(), max_length=100, required=False,
                                     help_text='Triggers, e.g. {"type": "schedule", "cron": "0 9 * * 1-5"}.')
    priority = serializers.IntegerField(min_value=0, max_value=10, required=False)
    metadata = serializers.DictField(required=False)
    queue = serializers.CharField(max_length=100, required=False)


class WorkflowListQuery(Strict):
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    status = serializers.ChoiceField(choices=Workflow.Status.choices, required=False)
    name = serializers.CharField(max_length=200, required=False, help_text="Part of the name (case-insensitive).")
    priority_min = serializers.IntegerField(min_value=0, max_value=10, required=False)
    priority_max = serializers.IntegerField(min_value=0, max_value=10, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class WorkflowPatchRequest(Strict):
    """Whole fields of the definition; each becomes a path of ``workflow_update``."""

    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    priority = serializers.IntegerField(min_value=0, max_value=10, required=False)
    steps = serializers.ListField(child=StepField(), max_length=200, required=False)
    triggers = serializers.ListField(child=TriggerField(), max_length=100, required=False)
    metadata = serializers.DictField(required=False)
    queue = serializers.CharField(max_length=100, required=False)
    expected_version = serializers.IntegerField(
        min_value=1, required=False, help_text="Apply only if the workflow is still at this version (else 409).")


class WorkflowExecuteRequest(Strict):
    input_data = serializers.DictField(required=False, help_text="The execution's input, e.g. "
                                       '{"symbols": ["AAPL"], "test_mode": true}.')
    trigger = serializers.CharField(max_length=50, required=False)
    timeout = serializers.IntegerField(min_value=1, max_value=600, required=False,
                                       help_text="With async=false: seconds to wait for the final status.")


# `async` is a Python keyword: declared after the class body.
WorkflowExecuteRequest._declared_fields["async"] = serializers.BooleanField(
    required=False, help_text="false: wait (bounded) for the final status and each step's result. Default true.")


class WorkflowUpdateRequest(Strict):
    updates = serializers.DictField(help_text='Path -> value, e.g. {"steps[2].params.threshold": 0.9, '
                                              '"steps[generate_signals].params.threshold": 0.9, "priority": 7}.')
    expected_version = serializers.IntegerField(
        min_value=1, required=False, help_text="Apply only if the workflow is still at this version (else 409).")


class StatusQuery(Strict):
    include_metrics = serializers.BooleanField(required=False)


class MetricsQuery(Strict):
    window = serializers.CharField(max_length=20, required=False, help_text="e.g. 24h, 7d, 30m.")


class AuditQuery(Strict):
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    start_time = serializers.DateTimeField(required=False)


class AgentAssignRequest(Strict):
    task_id = serializers.CharField(max_length=100, help_text="The step's name.")
    agent_type = serializers.CharField(max_length=50, required=False)
    use_vector_similarity = serializers.BooleanField(required=False)


# --- queues and dead letters ------------------------------------------------------------------


class QueueStatusQuery(Strict):
    queue_name = serializers.CharField(max_length=100, required=False)
    include_messages = serializers.BooleanField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False,
                                     help_text="At most this many messages per queue with include_messages.")


class QueueMessagesQuery(Strict):
    include_messages = serializers.BooleanField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class QueueCreateRequest(Strict):
    """The specification's queue_config."""

    name = serializers.CharField(max_length=100)
    max_retries = serializers.IntegerField(min_value=0, max_value=100, required=False)
    visibility_timeout = serializers.FloatField(min_value=0.1, max_value=43_200, required=False,
                                                help_text="Seconds a received message stays invisible.")
    message_retention = serializers.IntegerField(min_value=1, max_value=30 * 86_400, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    ordering = serializers.ChoiceField(choices=["FIFO", "standard"], required=False)
    deduplication = serializers.BooleanField(required=False)
    deduplication_window = serializers.IntegerField(min_value=1, max_value=7 * 86_400, required=False)
    max_messages = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    workflow_id = serializers.CharField(max_length=200, required=False)


class QueueSendRequest(Strict):
    message = AnyJSON(help_text="The message payload (any JSON).")
    group_id = serializers.CharField(max_length=100, required=False, help_text="FIFO ordering group.")
    deduplication_id = serializers.CharField(max_length=200, required=False)
    delay = serializers.FloatField(min_value=0, max_value=86_400, required=False, help_text="Seconds.")


class QueueReceiveRequest(Strict):
    max_messages = serializers.IntegerField(min_value=1, max_value=1000, required=False,
                                            help_text="Default: the queue's batch_size.")
    consumer = serializers.RegexField(r"^[A-Za-z0-9_.:\-]{1,100}$", required=False)


class QueueAckRequest(Strict):
    message_ids = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=1000)


class EventIngestRequest(Strict):
    kind = serializers.CharField(max_length=50, required=False)
    payload = serializers.DictField()
    source = serializers.CharField(max_length=100, required=False)
    event_id = serializers.CharField(max_length=200, required=False)


class DeadLetterQuery(Strict):
    status = serializers.ChoiceField(choices=DeadLetter.Status.choices, required=False)
    error_class = serializers.CharField(max_length=100, required=False)
    queue_name = serializers.CharField(max_length=100, required=False)
    source = serializers.ChoiceField(choices=["step", "queue"], required=False)
    created_after = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    include_traceback = serializers.BooleanField(required=False)


class DeadLetterRedriveRequest(Strict):
    dead_letter_ids = serializers.ListField(child=serializers.UUIDField(format="hex_verbose"), min_length=1,
                                            max_length=500)


class DeadLetterProcessRequest(Strict):
    limit = serializers.IntegerField(min_value=1, max_value=5000, required=False)


# --- replies (documentation; the operations build them) ---------------------------------------


class Reply(serializers.Serializer):
    success = serializers.BooleanField()


class WorkflowSummary(serializers.Serializer):
    workflow_id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Workflow.Status.choices)
    priority = serializers.IntegerField()
    version = serializers.IntegerField()


class WorkflowCreated(Reply, WorkflowSummary):
    features = serializers.ListField(child=serializers.CharField(),
                                     help_text="Computed from the definition, e.g. message_queues, audit_trail, "
                                               "agent_assignment.")


class WorkflowList(Reply):
    workflows = WorkflowSummary(many=True)
    count = serializers.IntegerField()
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class ExecutionStarted(Reply):
    execution_id = serializers.UUIDField()
    workflow_id = serializers.UUIDField()
    workflow_name = serializers.CharField()
    status = serializers.CharField(help_text="queued / running with async=true; the final status with async=false.")
    started_at = serializers.DateTimeField()
    steps = serializers.DictField(required=False, help_text="async=false: each step's status, timings and result.")


class AuditEventReply(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    event = serializers.CharField(help_text="workflow_started, step_completed, step_failed, ...")


class AuditTrail(Reply):
    events = AuditEventReply(many=True)
    count = serializers.IntegerField()
    total = serializers.IntegerField()


class QueueReply(serializers.Serializer):
    name = serializers.CharField()
    messages_available = serializers.IntegerField()
    messages_in_flight = serializers.IntegerField()
    oldest_message_age = serializers.FloatField(allow_null=True)


class QueueStatus(Reply):
    queues = QueueReply(many=True)
    total_messages = serializers.IntegerField()
    processing_rate = serializers.FloatField(help_text="Messages per minute.")


class WorkflowMetricsReply(Reply):
    executions = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    average_duration = serializers.FloatField(allow_null=True)
    steps_performance = serializers.DictField()
    system = serializers.DictField()
    cost_breakdown = serializers.DictField()

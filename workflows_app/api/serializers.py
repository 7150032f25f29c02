"""Request shapes of the REST face: they check types and document the API (OpenAPI); the
operations check everything else (definitions against step/trigger schemas, ownership).

The request serializers of the operations are generated from the operation catalogue; the only
hand-written ones are REST's own shapes (the token exchange, PATCH by whole fields) and the replies.
"""
from __future__ import annotations

from rest_framework import serializers

from workflows_app import operations
from workflows_app.api.definition_fields import StepField, TriggerField
from workflows_app.models import Workflow

# Definition lists are typed by the registered step and trigger types (OpenAPI: WorkflowStep / WorkflowTrigger).
TYPED_ITEMS = {"steps": StepField, "triggers": TriggerField}


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


# --- request shapes, generated from the operation catalogue -------------------------------------
#
# Each is its operation's argument model as a DRF serializer: the same names, types, bounds and
# choices (the OpenAPI request bodies and query parameters come from these). Arguments a route
# takes from its path are left out. Only the fields a client gave reach the operation, which
# applies its own defaults.


def _drf_field(prop: dict, *, required: bool) -> serializers.Field:
    options = {"required": required}
    if prop.get("description"):
        options["help_text"] = prop["description"]
    choices = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if choices:  # a nullable or a several-typed argument: its (first) string or only other form
        options["allow_null"] = len(choices) < len(prop["anyOf"])
        prop = {**prop, **next((c for c in choices if c.get("type") == "string"), choices[0])}
    kind = prop.get("type")
    if "enum" in prop:
        return serializers.ChoiceField(choices=prop["enum"], **options)
    if kind == "integer":
        return serializers.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **options)
    if kind == "number":
        return serializers.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **options)
    if kind == "boolean":
        return serializers.BooleanField(**options)
    if kind == "string":
        if prop.get("format") == "date-time":
            return serializers.DateTimeField(**options)
        if prop.get("format") == "uuid":
            return serializers.UUIDField(format="hex_verbose", **options)
        lengths = {"max_length": prop.get("maxLength"), "min_length": prop.get("minLength")}
        if prop.get("pattern"):
            return serializers.RegexField(prop["pattern"], **lengths, **options)
        # Blank only where blank is the default (a description), as DRF's CharField by default.
        return serializers.CharField(allow_blank=prop.get("default") == "", **lengths, **options)
    if kind == "array":
        items = prop.get("items") or {}
        simple = items.get("type") in ("string", "integer", "number", "boolean")
        child = _drf_field(items, required=True) if simple else serializers.DictField()
        return serializers.ListField(child=child, min_length=prop.get("minItems"), max_length=prop.get("maxItems"),
                                     **options)
    if kind == "object":
        return serializers.DictField(**options)
    return AnyJSON(**options)


def from_operation(operation, *, exclude: tuple[str, ...] = (), name: str | None = None) -> type[Strict]:
    """The REST request serializer of a catalogue operation (fields in `exclude` come from the path)."""
    schema = operation.args.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    fields = {key: _drf_field(prop, required=key in required)
              for key, prop in schema.get("properties", {}).items() if key not in exclude}
    for key, item in TYPED_ITEMS.items():
        if isinstance(fields.get(key), serializers.ListField):
            old = fields[key]
            fields[key] = serializers.ListField(child=item(), min_length=old.min_length, max_length=old.max_length,
                                                required=old.required, help_text=old.help_text)
    class_name = name or "".join(part.title() for part in operation.name.split("_")) + "Request"
    return type(class_name, (Strict,), {**fields, "__doc__": operation.description,
                                        "__module__": __name__})


WorkflowCreateRequest = from_operation(operations.workflow_create)
WorkflowListQuery = from_operation(operations.workflow_list, name="WorkflowListQuery")
WorkflowExecuteRequest = from_operation(operations.workflow_execute, exclude=("workflow_id",))
WorkflowUpdateRequest = from_operation(operations.workflow_update, exclude=("workflow_id",))
AgentAssignRequest = from_operation(operations.workflow_agent_assign, exclude=("workflow_id",))
ExecutionRerunRequest = from_operation(operations.execution_rerun, exclude=("execution_id",))
StatusQuery = from_operation(operations.workflow_status, exclude=("workflow_id", "execution_id"), name="StatusQuery")
MetricsQuery = from_operation(operations.workflow_metrics, exclude=("workflow_id",), name="MetricsQuery")
AuditQuery = from_operation(operations.workflow_audit_trail, exclude=("workflow_id", "execution_id"),
                            name="AuditQuery")
QueueStatusQuery = from_operation(operations.workflow_queue_status, name="QueueStatusQuery")
QueueMessagesQuery = from_operation(operations.workflow_queue_status, exclude=("queue_name",),
                                    name="QueueMessagesQuery")
QueueCreateRequest = from_operation(operations.queue_create)
QueueSendRequest = from_operation(operations.queue_send, exclude=("queue_name", "message_group_id"))
QueueReceiveRequest = from_operation(operations.queue_receive, exclude=("queue_name",))
QueueAckRequest = from_operation(operations.queue_ack, exclude=("queue_name", "message_id"))
EventIngestRequest = from_operation(operations.event_ingest)
DeadLetterQuery = from_operation(operations.dead_letters, name="DeadLetterQuery")
DeadLetterRedriveRequest = from_operation(operations.dead_letter_redrive, exclude=("dead_letter_id",))
DeadLetterProcessRequest = from_operation(operations.process_dead_letters)
DecisionBody = from_operation(operations.execution_approve, exclude=("execution_id",), name="DecisionBody")


class WorkflowPatchRequest(Strict):
    """Whole fields of the definition; each becomes a path of ``workflow_update`` (a REST shape)."""

    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    priority = serializers.IntegerField(min_value=0, max_value=10, required=False)
    steps = serializers.ListField(child=StepField(), max_length=200, required=False)
    triggers = serializers.ListField(child=TriggerField(), max_length=100, required=False)
    metadata = serializers.DictField(required=False)
    queue = serializers.CharField(max_length=100, required=False)
    expected_version = serializers.IntegerField(
        min_value=1, required=False, help_text="Apply only if the workflow is still at this version (else 409).")


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
    execution_url = serializers.CharField(help_text="The execution view: its timeline, each step's input and output.")
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

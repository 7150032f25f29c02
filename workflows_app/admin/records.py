"""Admins of what the engine writes (executions, audit events, dead letters) and of agents and queues."""
from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from workflows_app import operations
from workflows_app.admin.common import (
    JSON_WIDGET,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_link,
    apply_to_each,
    report,
)
from workflows_app.models import (
    Agent,
    ApprovalRequest,
    AuditEvent,
    DeadLetter,
    Execution,
    MessageQueue,
    StepRun,
)


class StepRunInline(ReadOnlyInline):
    model = StepRun
    fields = ["step_name", "step_type", "attempt", "status", "is_compensation", "queue", "started_at", "duration_s",
              "result", "error_class", "error"]
    readonly_fields = fields
    ordering = ["started_at", "id"]

    @admin.display(description="duration (s)")
    def duration_s(self, obj):
        return f"{obj.duration:.3f}" if obj.duration is not None else "-"


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    fields = ["timestamp", "event", "step", "data"]
    readonly_fields = fields
    ordering = ["timestamp", "id"]


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "workflow", "status", "trigger", "test_mode", "current_step", "queued_at", "duration_s",
                    "view_link"]
    list_filter = ["status", "trigger", "test_mode", "workflow"]
    search_fields = ["id", "workflow__name"]
    date_hierarchy = "queued_at"
    list_select_related = ["workflow"]
    fields = ["id", "view_link", "workflow", "version_number", "status", "trigger", "trigger_event", "test_mode", "priority",
              "input_data", "context", "current_step", "cursor", "error", "parent", "parent_step", "owner",
              "rerun_of", "rerun_from_step", "queued_at", "started_at", "finished_at", "heartbeat_at", "wake_at",
              "dispatch_count"]
    readonly_fields = fields
    inlines = [StepRunInline, AuditEventInline]
    actions = ["cancel", "retry", "approve", "reject"]

    @admin.display(description="execution view")
    def view_link(self, obj):
        """The operator's view of the run: timeline, each step's input and output, the graph, actions."""
        return format_html('<a href="{}">timeline</a>', reverse("execution-view", args=[obj.pk]))

    @admin.display(description="version")
    def version_number(self, obj):
        return obj.version.number

    @admin.display(description="duration (s)")
    def duration_s(self, obj):
        return f"{obj.duration:.3f}" if obj.duration is not None else "-"

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        apply_to_each(self, request, queryset, "cancel", "Cancelled", operations.execution_cancel,
                      "execution_id", lambda e: e.pk)

    @admin.action(description="Retry from the failed step")
    def retry(self, request, queryset):
        apply_to_each(self, request, queryset, "retry", "Retrying", operations.execution_retry,
                      "execution_id", lambda e: e.pk)

    @admin.action(description="Approve the waiting approval")
    def approve(self, request, queryset):
        apply_to_each(self, request, queryset, "approve", "Approved", operations.execution_approve,
                      "execution_id", lambda e: e.pk)

    @admin.action(description="Reject the waiting approval")
    def reject(self, request, queryset):
        apply_to_each(self, request, queryset, "reject", "Rejected", operations.execution_reject,
                      "execution_id", lambda e: e.pk)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["requested_at", "step_name", "status", "execution_link", "expires_at", "decided_by_label",
                    "decided_at"]
    list_filter = ["status"]
    search_fields = ["step_name", "summary", "execution__id"]
    fields = ["id", "execution_link", "step_name", "summary", "subject", "status", "requested_at", "expires_at",
              "decided_by_label", "decided_at", "comment"]
    readonly_fields = fields
    actions = ["approve", "reject"]

    @admin.display(description="execution")
    def execution_link(self, obj):
        return admin_link(obj.execution)

    @admin.action(description="Approve")
    def approve(self, request, queryset):
        self._decide(request, queryset, "approve", "Approved", operations.execution_approve)

    @admin.action(description="Reject")
    def reject(self, request, queryset):
        self._decide(request, queryset, "reject", "Rejected", operations.execution_reject)

    def _decide(self, request, queryset, verb: str, done: str, operation) -> None:
        """Each selected request's execution decided through the operation (refusals reported)."""
        for obj in queryset:
            name = f"{obj.step_name} of {obj.execution_id}"
            if report(self, request, f"{verb} {name}",
                      lambda o=obj: operation(execution_id=str(o.execution_id), user=request.user)):
                self.message_user(request, f"{done} {name}.")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "event", "workflow", "execution", "step"]
    list_filter = ["event"]
    search_fields = ["event", "step", "execution__id"]
    list_select_related = ["workflow"]
    date_hierarchy = "timestamp"


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "source", "queue_name", "workflow", "step_name", "error_class", "status", "attempts",
                    "redrive_count", "execution_link"]
    list_filter = ["status", "source", "error_class", "queue_name"]
    search_fields = ["error", "step_name", "queue_name"]
    list_select_related = ["workflow"]
    readonly_fields = ["id", "source", "queue_name", "workflow", "execution_link", "step_name", "error_class", "error",
                       "traceback", "payload", "attempts", "status", "redrive_count", "next_attempt_at", "created_at",
                       "updated_at"]
    fields = readonly_fields
    actions = ["redrive"]

    @admin.display(description="execution")
    def execution_link(self, obj):
        return admin_link(obj.execution) if obj.execution_id else "-"

    @admin.action(description="Redrive")
    def redrive(self, request, queryset):
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        reply = report(self, request, "redrive", lambda: operations.dead_letter_redrive(dead_letter_ids=ids,
                                                                                        user=request.user))
        if reply:
            self.message_user(request, f"Redrove {reply['count']} dead letter(s).")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "queue", "created_at"]
    search_fields = ["name", "type", "queue"]
    formfield_overrides = JSON_WIDGET


@admin.register(MessageQueue)
class MessageQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "ordering", "max_retries", "visibility_timeout", "message_retention",
                    "batch_size", "deduplication", "max_messages"]
    list_filter = ["kind", "ordering", "deduplication"]
    search_fields = ["name", "description"]

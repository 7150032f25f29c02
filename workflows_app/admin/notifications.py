"""Admin of outbound notification deliveries: each with its attempts inline, and a retry action."""
from __future__ import annotations

from django.contrib import admin

from workflows_app import operations
from workflows_app.admin.common import ReadOnlyAdmin, ReadOnlyInline, admin_link, apply_to_each
from workflows_app.models import NotificationAttempt, NotificationDelivery


class NotificationAttemptInline(ReadOnlyInline):
    model = NotificationAttempt
    fields = ["number", "created_at", "success", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields
    ordering = ["number"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "channel", "channel_format", "status", "attempts", "max_attempts",
                    "execution_link", "delivered_at"]
    list_filter = ["status", "kind", "channel", "channel_format"]
    search_fields = ["id", "kind", "channel", "execution__id"]
    date_hierarchy = "created_at"
    readonly_fields = ["id", "kind", "channel", "channel_format", "key", "execution_link", "status", "attempts",
                       "max_attempts", "next_attempt_at", "lease_until", "last_error", "payload", "body",
                       "created_at", "updated_at", "delivered_at"]
    fields = readonly_fields
    inlines = [NotificationAttemptInline]
    actions = ["retry"]

    @admin.display(description="execution")
    def execution_link(self, obj):
        return admin_link(obj.execution) if obj.execution_id else "-"

    @admin.action(description="Retry (failed deliveries)")
    def retry(self, request, queryset):
        apply_to_each(self, request, queryset, "retry", "Retrying", operations.notification_retry, "delivery_id",
                      lambda d: f"{d.kind} -> {d.channel}")

"""What every admin page shares: links, the action reporter, the read-only bases, the ops links."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models as dj_models
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from workflows_app.errors import OperationError
from workflows_app.operations.links import execution_url

JSON_WIDGET = {dj_models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 48})}}


def admin_link(obj, label=None):
    if obj is None:
        return "-"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(label or obj)
    return format_html('<a href="{}">{}</a>', url, label or obj)


def execution_link(execution_id, text: str | None = None) -> str:
    return format_html('<a href="{}">{}</a>', execution_url(execution_id), text or f"execution {execution_id}")


def report(modeladmin, request, label: str, call) -> None:
    """Run one operation call for an action and report its outcome as a message."""
    try:
        reply = call()
    except OperationError as exc:
        modeladmin.message_user(request, f"{label}: {exc.code}: {exc.message}", messages.ERROR)
        return None
    return reply


def apply_to_each(modeladmin, request, queryset, verb: str, done: str, operation, field: str, label=str) -> None:
    """An action calling one operation per selected row (`field` = the row's uuid), each reported."""
    for obj in queryset:
        name = label(obj)
        if report(modeladmin, request, f"{verb} {name}",
                  lambda o=obj: operation(**{field: str(o.pk)}, user=request.user)):
            modeladmin.message_user(request, f"{done} {name}.")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def ops_links() -> list[tuple[str, str]]:
    links = [("Flower (Celery monitor)", settings.NEXUS_FLOWER_URL)]
    try:
        links.append(("Beat schedules (periodic tasks)", reverse("admin:django_celery_beat_periodictask_changelist")))
    except NoReverseMatch:
        pass
    try:
        links.append(("Live dashboard", reverse("dashboard")))
    except NoReverseMatch:
        pass
    return links


def ops_links_html(obj=None):
    return format_html_join(" · ", '<a href="{}" target="_blank" rel="noopener">{}</a>',
                            ((url, label) for label, url in ops_links()))

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.shortcuts import redirect
from django.urls import reverse

from trading_app import killswitch, models, operations
from workflows_app.admin import ReadOnlyAdmin, report  # trading records are written by the engine only
from workflows_app.admin.common import apply_to_each


class FillInline(admin.TabularInline):
    model = models.Fill
    extra = 0
    can_delete = False
    readonly_fields = ["qty", "price", "market_price", "commission", "realized_pnl", "equity_after", "timestamp"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "broker", "account", "symbol", "side", "order_type", "qty", "status",
                    "filled_avg_price", "client_order_id", "leg"]
    list_filter = ["broker", "account", "status", "side", "order_type", "test_mode"]
    search_fields = ["symbol", "client_order_id", "broker_order_id", "execution_id"]
    inlines = [FillInline]


@admin.register(models.Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "symbol", "side", "qty", "price", "commission", "realized_pnl", "equity_after"]
    list_filter = ["side", "symbol"]


@admin.register(models.Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["symbol", "account", "qty", "avg_entry_price", "last_price", "realized_pnl", "updated_at"]
    list_filter = ["account"]


@admin.register(models.AccountSnapshot)
class AccountSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["taken_at", "broker", "account", "cash", "positions_value", "equity", "gross_exposure", "reason"]
    list_filter = ["broker", "account"]


@admin.register(models.NewsItem)
class NewsItemAdmin(ReadOnlyAdmin):
    list_display = ["published_at", "provider", "source", "headline", "sentiment", "breaking"]
    list_filter = ["provider", "source", "breaking"]
    search_fields = ["headline"]


@admin.register(models.BrokerAccount)
class BrokerAccountAdmin(ReadOnlyAdmin):
    """Balances are read-only (only fills move them); owners, the account's kill switch, its limits
    (which can only tighten the operator's ceilings: validated by the model) and the simulation knobs
    are editable by superusers."""

    list_display = ["name", "broker", "kind", "default_for", "halted", "cash", "reserved_cash", "realized_pnl",
                    "max_position_pct", "max_gross_exposure", "updated_at"]
    list_filter = ["broker", "kind", "halted"]
    search_fields = ["name", "owners__username"]
    fields = ["name", "broker", "kind", "default_for", "owners", "halted", "halt_reason", "max_position_pct",
              "max_gross_exposure", "starting_cash", "cash", "reserved_cash", "realized_pnl", "total_commission",
              "slippage_bps", "commission_per_share", "commission_min", "allow_short", "updated_at"]
    readonly_fields = ["name", "broker", "kind", "default_for", "starting_cash", "cash", "reserved_cash",
                       "realized_pnl", "total_commission", "updated_at"]
    filter_horizontal = ["owners"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(models.Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "channel", "subject", "execution_id"]
    list_filter = ["kind"]


@admin.register(models.KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    """The one editable trading record, a singleton (its row is created by migration 0004): no add, no
    delete, the list opens the switch itself. Switching it on refuses every new order at once; the
    change goes through ``killswitch.set_kill_switch`` (audited with who and why)."""

    fields = ["active", "reason", "updated_by", "updated_at"]
    readonly_fields = ["updated_by", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return redirect(reverse("admin:trading_app_killswitch_change", args=[1]))

    def get_object(self, request, object_id, from_field=None):
        if str(object_id) == "1":
            models.KillSwitch.load()  # the row is migrated; a flushed (test) database may lack it
        return super().get_object(request, object_id, from_field)

    def save_model(self, request, obj, form, change):
        killswitch.set_kill_switch(obj.active, obj.reason, by=getattr(request.user, "username", "") or "")


class RiskResetForm(ActionForm):
    reason = forms.CharField(required=False, max_length=300, help_text="why (required to reset; audited)")


@admin.register(models.RiskState)
class RiskStateAdmin(admin.ModelAdmin):
    """Each account's risk governor: its state and why, the baselines, and its own limits (superusers;
    validated to only tighten the ceilings). Reset (with a reason) goes through the ``risk_reset``
    operation, audited with who and why."""

    list_display = ["account", "state", "breached_limit", "reason", "since", "day_open_equity", "peak_equity",
                    "reset_by", "reset_at"]
    list_filter = ["state"]
    fields = ["account", "state", "breached_limit", "reason", "since", "day", "day_open_equity", "peak_equity",
              "last_reading", "streaks", "max_daily_loss", "max_drawdown", "max_net_exposure", "max_order_notional",
              "max_orders_per_minute", "reset_by", "reset_reason", "reset_at"]
    readonly_fields = ["account", "state", "breached_limit", "reason", "since", "day", "day_open_equity",
                       "peak_equity", "last_reading", "streaks", "reset_by", "reset_reason", "reset_at"]
    action_form = RiskResetForm
    actions = ["reset"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.action(description="Reset to active (type the reason above)")
    def reset(self, request, queryset):
        reason = request.POST.get("reason", "")
        for obj in queryset.select_related("account"):
            if report(self, request, f"reset {obj.account.name}", lambda o=obj: operations.risk_reset(
                    account=o.account.name, reason=reason, user=request.user)):
                self.message_user(request, f"Reset {obj.account.name} to active.")


@admin.register(models.RiskEvent)
class RiskEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "account", "kind", "decision", "limit", "state", "reason", "execution_id", "step"]
    list_filter = ["kind", "decision", "limit", "account"]
    search_fields = ["execution_id", "client_order_id", "reason"]


# --- backtests --------------------------------------------------------------------------------------
def _last_year(workflow_id: str, user) -> dict:
    from datetime import UTC, datetime, timedelta

    from trading_app import operations

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return operations.workflow_backtest(workflow_id=workflow_id, start=(end - timedelta(days=365)).isoformat(),
                                        end=end.isoformat(), user=user)


@admin.action(description="Backtest over the last year (daily bars, default fill model)")
def backtest_last_year(modeladmin, request, queryset):
    """Start one backtest per selected workflow (``workflow_backtest``; a worker runs them)."""
    apply_to_each(modeladmin, request, queryset, "backtest", "Started a backtest of", _last_year, "workflow_id",
                  lambda w: w.name)


def _add_workflow_action() -> None:
    """The engine's workflow admin knows nothing of trading: trading adds its action to it."""
    from workflows_app.models import Workflow

    workflow_admin = admin.site._registry.get(Workflow)
    if workflow_admin is not None and backtest_last_year not in (workflow_admin.actions or []):
        workflow_admin.actions = [*(workflow_admin.actions or []), backtest_last_year]


_add_workflow_action()


@admin.register(models.Backtest)
class BacktestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workflow", "status", "bars_done", "bars_total", "decisions", "total_return",
                    "max_drawdown", "sharpe"]
    list_filter = ["status"]
    readonly_fields = ["workflow", "version", "owner", "account", "status", "arguments", "bars_done", "bars_total",
                       "decisions", "metrics", "error", "created_at", "started_at", "finished_at", "charts"]
    exclude = ["artefacts", "definition"]

    class Media:
        js = ["vendor/plotly/plotly.min.js"]

    @admin.display(description="charts")
    def charts(self, obj):
        from django.utils.safestring import mark_safe

        from trading_app.backtest.charts import charts_html

        if obj is None or obj.status != "succeeded":
            return "-"
        return mark_safe(charts_html(obj))  # noqa: S308 - Plotly's own divs and scripts from our numbers

    def _metric(self, obj, key):
        value = (obj.metrics or {}).get(key)
        return "-" if value is None else value

    def total_return(self, obj):
        return self._metric(obj, "total_return")

    def max_drawdown(self, obj):
        return self._metric(obj, "max_drawdown")

    def sharpe(self, obj):
        return self._metric(obj, "sharpe")

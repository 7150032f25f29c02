from django.contrib import admin

from trading_app import models
from workflows_app.admin import ReadOnlyAdmin  # trading records are written by the engine only
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
    """The one editable trading record: switching it on refuses every new order at once."""

    list_display = ["__str__", "active", "reason", "updated_by", "updated_at"]
    fields = ["active", "reason", "updated_by", "updated_at"]
    readonly_fields = ["updated_by", "updated_at"]

    def has_add_permission(self, request):
        return not models.KillSwitch.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.updated_by = getattr(request.user, "username", "") or ""
        super().save_model(request, obj, form, change)


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

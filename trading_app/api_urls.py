"""REST face of the trading operations, mounted at /api/v1/trading/ (nexus_project.urls)."""
from django.urls import path

from trading_app import api_views as v

urlpatterns = [
    path("accounts/", v.AccountsView.as_view(), name="trading-accounts"),
    path("account/", v.AccountView.as_view(), name="trading-account"),
    path("positions/", v.PositionsView.as_view(), name="trading-positions"),
    path("orders/", v.OrdersView.as_view(), name="trading-orders"),
    path("risk/", v.RiskView.as_view(), name="trading-risk"),
    path("risk/reset/", v.RiskResetView.as_view(), name="trading-risk-reset"),
    path("kill-switch/", v.KillSwitchView.as_view(), name="trading-kill-switch"),
]

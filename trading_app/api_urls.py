"""/api/v1/trading/... (included from nexus_project/urls.py)."""
from django.urls import path

from trading_app import api

urlpatterns = [
    path("account/", api.AccountView.as_view(), name="trading-account"),
    path("positions/", api.PositionsView.as_view(), name="trading-positions"),
    path("orders/", api.OrdersView.as_view(), name="trading-orders"),
    path("kill-switch/", api.KillSwitchView.as_view(), name="trading-kill-switch"),
]

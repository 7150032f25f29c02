"""Dashboard and /mcp routes (the UI/MCP face), included at the site root."""
from django.urls import path

from workflows_app.ui import mcp_http, views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/data.json", views.dashboard_json, name="dashboard-data"),
    path("mcp", mcp_http.mcp_endpoint, name="mcp"),
]

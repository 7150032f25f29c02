"""Dashboard and /mcp routes (the UI/MCP face), included at the site root."""
from django.urls import path

from workflows_app.ui import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/data.json", views.dashboard_json, name="dashboard-data"),
]

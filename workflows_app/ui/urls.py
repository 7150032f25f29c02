"""Dashboard, execution view and /mcp routes (the UI/MCP face), included at the site root."""
from django.contrib.auth.views import LoginView
from django.urls import path

from workflows_app.ui import executions, mcp_http, views, workflows

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/data.json", views.dashboard_json, name="dashboard-data"),
    # Any active user (the admin's login takes staff only): owners follow their own executions.
    path("ui/login/", LoginView.as_view(template_name="admin/login.html", extra_context={"site_header": "Nexus"}),
         name="ui-login"),
    path("ui/executions/<uuid:execution_id>/", executions.execution_page, name="execution-view"),
    path("ui/executions/<uuid:execution_id>/data.json", executions.execution_data, name="execution-data"),
    path("ui/executions/<uuid:execution_id>/action/", executions.execution_action, name="execution-action"),
    path("ui/workflows/<str:workflow_id>/", workflows.workflow_page, name="workflow-view"),
    path("mcp", mcp_http.mcp_endpoint, name="mcp"),
]

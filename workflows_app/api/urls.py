"""REST API routes: /api/v1/... (the operations), /api/schema/ (OpenAPI), /api/docs/ (Swagger UI).

Trading routes (/api/v1/trading/...) are included from nexus_project/urls.py: workflows_app
never refers to trading_app.
"""
from django.urls import path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

from workflows_app.api import catalogue_routes, queue_views, views, vocabulary

v1 = [
    path("workflows/", views.WorkflowListView.as_view(), name="workflows"),
    path("workflows/<str:workflow_id>/", views.WorkflowDetailView.as_view(), name="workflow"),
    path("workflows/<str:workflow_id>/execute/", views.WorkflowExecuteView.as_view(), name="workflow-execute"),
    path("workflows/<str:workflow_id>/status/", views.WorkflowStatusView.as_view(), name="workflow-status"),
    path("workflows/<str:workflow_id>/update/", views.WorkflowUpdateView.as_view(), name="workflow-update"),
    path("workflows/<str:workflow_id>/pause/", views.WorkflowPauseView.as_view(), name="workflow-pause"),
    path("workflows/<str:workflow_id>/resume/", views.WorkflowResumeView.as_view(), name="workflow-resume"),
    path("workflows/<str:workflow_id>/metrics/", views.WorkflowMetricsView.as_view(), name="workflow-metrics"),
    path("workflows/<str:workflow_id>/audit/", views.WorkflowAuditView.as_view(), name="workflow-audit"),
    path("workflows/<str:workflow_id>/agents/", views.WorkflowAgentsView.as_view(), name="workflow-agents"),
    path("executions/<str:execution_id>/", views.ExecutionDetailView.as_view(), name="execution"),
    path("executions/<str:execution_id>/audit/", views.ExecutionAuditView.as_view(), name="execution-audit"),
    path("executions/<str:execution_id>/cancel/", views.ExecutionCancelView.as_view(), name="execution-cancel"),
    path("executions/<str:execution_id>/retry/", views.ExecutionRetryView.as_view(), name="execution-retry"),
    path("executions/<str:execution_id>/approve/", views.ExecutionApproveView.as_view(), name="execution-approve"),
    path("executions/<str:execution_id>/reject/", views.ExecutionRejectView.as_view(), name="execution-reject"),
    path("executions/<str:execution_id>/rerun/", views.ExecutionRerunView.as_view(), name="execution-rerun"),
    path("executions/<str:execution_id>/timeline/", views.ExecutionTimelineView.as_view(), name="execution-timeline"),
    path("queues/", queue_views.QueueStatusView.as_view(), name="queues"),
    path("queues/<str:queue_name>/", queue_views.QueueDetailView.as_view(), name="queue"),
    path("queues/<str:queue_name>/messages/", queue_views.QueueMessagesView.as_view(), name="queue-messages"),
    path("queues/<str:queue_name>/receive/", queue_views.QueueReceiveView.as_view(), name="queue-receive"),
    path("queues/<str:queue_name>/ack/", queue_views.QueueAckView.as_view(), name="queue-ack"),
    path("dead-letters/", queue_views.DeadLetterListView.as_view(), name="dead-letters"),
    path("dead-letters/redrive/", queue_views.DeadLetterBulkRedriveView.as_view(), name="dead-letters-redrive"),
    path("dead-letters/process/", queue_views.DeadLetterProcessView.as_view(), name="dead-letters-process"),
    path("dead-letters/<uuid:dead_letter_id>/redrive/", queue_views.DeadLetterRedriveView.as_view(),
         name="dead-letter-redrive"),
    path("events/", views.EventWebhookView.as_view(), name="events"),
    path("events/manual/", views.EventIngestView.as_view(), name="events-manual"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("agents/", views.AgentListView.as_view(), name="agents"),
    path("metrics/", views.SystemMetricsView.as_view(), name="metrics"),
    path("step-types/", vocabulary.StepTypeListView.as_view(), name="step-types"),
    path("trigger-types/", vocabulary.TriggerTypeListView.as_view(), name="trigger-types"),
]

app_name = "api"
urlpatterns = [
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in [*v1, *catalogue_routes.urlpatterns()]],
    path("schema/", extend_schema(exclude=True)(SpectacularAPIView).as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema", permission_classes=[IsAuthenticated]),
         name="docs"),
]

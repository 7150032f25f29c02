from django.contrib import admin
from django.urls import include, path

from workflows_app.api.metrics import metrics_view
from workflows_app.health import health

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/v1/trading/", include("trading_app.api_urls")),
    path("api/v1/", include("trading_app.backtest_api")),  # workflows/{id}/backtest/, backtests/{id}/...
    path("api/", include("workflows_app.api.urls")),
    path("metrics", metrics_view, name="prometheus-metrics"),
    path("", include("workflows_app.ui.urls")),
]

handler400 = "workflows_app.api.errors.handler400"
handler403 = "workflows_app.api.errors.handler403"
handler404 = "workflows_app.api.errors.handler404"
handler500 = "workflows_app.api.errors.handler500"

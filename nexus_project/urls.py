from django.contrib import admin
from django.urls import include, path

from workflows_app.health import health

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/", include("workflows_app.api.urls")),
    path("", include("workflows_app.ui.urls")),
]

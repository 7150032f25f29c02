from django.contrib import admin
from django.urls import path

from workflows_app.health import health

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
]

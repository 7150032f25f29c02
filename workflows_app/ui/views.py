"""The staff dashboard: a page whose charts poll ``dashboard/data.json`` every few seconds."""
from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from workflows_app.admin import ops_links
from workflows_app.ui.data import dashboard_data


@never_cache
@staff_member_required
def dashboard(request):
    refresh = getattr(settings, "NEXUS_DASHBOARD_REFRESH_SECONDS", 5)
    return render(request, "dashboard/dashboard.html", {"refresh_seconds": refresh, "ops_links": ops_links()})


@never_cache
def dashboard_json(request):
    if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
        status = 403 if request.user.is_authenticated else 401
        return JsonResponse({"success": False, "error": {"code": "PERMISSION_DENIED",
                                                         "message": "the dashboard is for staff",
                                                         "details": {}}}, status=status)
    try:
        hours = max(1, min(int(request.GET.get("hours", 24)), 24 * 14))
    except ValueError:
        hours = 24
    return JsonResponse({"success": True, **dashboard_data(hours)})

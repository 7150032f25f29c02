"""The Celery app. Configuration lives in Django settings under the CELERY_ namespace."""
import os

from celery import Celery

from nexus_project import kombu_fixes, quiet_logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings.local")

kombu_fixes.apply()  # before any connection: a worker must outlive a Redis restart
quiet_logs.connect()  # housekeeping tasks log at DEBUG
app = Celery("nexus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

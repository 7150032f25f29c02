"""The Celery app. Configuration lives in Django settings under the CELERY_ namespace."""
import os

from celery import Celery

from nexus_project import kombu_fixes, quiet_logs, task_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings.local")

kombu_fixes.apply()  # before any connection: outlive a Redis restart, one sync Redis client per channel
quiet_logs.connect()  # housekeeping tasks log at DEBUG
task_connections.connect()  # a database connection lives across tasks (CELERY_DB_REUSE_MAX)
app = Celery("nexus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

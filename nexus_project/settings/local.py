"""The quickstart (`make run`, manage.py and Celery's default): SQLite under var/ unless DATABASE_URL
is set, and the Redis ``nexus_project.runtime`` resolves (REDIS_URL, else the embedded server the
stack started, else 127.0.0.1:6379)."""
from nexus_project.runtime import resolve_redis_url
from nexus_project.settings.base import *  # noqa: F403
from nexus_project.settings.base import CACHES, env

REDIS_URL, REDIS_SOURCE = resolve_redis_url()
REDIS_SOURCE = env("NEXUS_REDIS_SOURCE", default=REDIS_SOURCE)  # set by `make run`: embedded / external
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL

"""Production (docker-compose, gunicorn): debug pages off whatever the environment says, and no
local fallbacks - DATABASE_URL (PostgreSQL) and REDIS_URL must be given."""
from nexus_project.settings.base import *  # noqa: F403
from nexus_project.settings.base import CACHES, env

DEBUG = False
WHITENOISE_AUTOREFRESH = False
env.db("DATABASE_URL")  # required: base built DATABASES from it, with a SQLite fallback not wanted here
REDIS_URL = env("REDIS_URL")
REDIS_SOURCE = "external"
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL

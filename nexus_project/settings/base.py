"""Settings shared by every environment; ``local``, ``test`` and ``production`` build on this one.

The only place that reads environment variables (django-environ, plus ``.env``): app modules read
their settings through their ``conf`` (``workflows_app.conf``, ``trading_app.conf``), which holds
each name's type and default. ``local`` (the default of manage.py and Celery) adds SQLite under
var/ and the Redis resolved by ``nexus_project.runtime``; ``production`` needs DATABASE_URL and
REDIS_URL; ``test`` is the suite's (its own Redis and database names).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import environ
from kombu import Exchange, Queue

from nexus_project.runtime import BASE_DIR, VAR_DIR, local_secret

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Secure by default: no public key (one is generated per checkout into the var dir), no debug pages.
SECRET_KEY = env("SECRET_KEY", default="") or local_secret("secret-key", 50)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally (no CDN)
    "django_celery_beat",
    "django_celery_results",
    "workflows_app",
    "trading_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "nexus_project.urls"
WSGI_APPLICATION = "nexus_project.wsgi.application"
ASGI_APPLICATION = "nexus_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'nexus.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + busy timeout + IMMEDIATE transactions: web, worker and beat write concurrently
    # without "database is locked" (writers queue on the lock instead of failing on upgrade).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
# Persistent connections (both databases): a worker's connection lives across tasks, checked at each
# task's first query (nexus_project/task_connections.py); on PostgreSQL a new one costs a server process.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis (each environment sets REDIS_URL, CELERY_BROKER_URL and the cache's LOCATION) -------
REDIS_URL = env("REDIS_URL", default="")
REDIS_SOURCE = env("NEXUS_REDIS_SOURCE", default="env")  # set by `make run`: embedded / external
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "nexus-cache",
        "TIMEOUT": 300,
    }
}

# --- Celery ---------------------------------------------------------------------------------
# Queues: `workflows` runs engine steps, `events` ingests events and evaluates triggers,
# `trading` runs broker-facing steps, `maintenance` runs beat housekeeping (reconciler, DLQ).
# `maintenance` has a consumer of its own (Procfile / compose), so no backlog delays the reconciler.
# `notifications` posts outbound webhooks: a slow receiver holds a slot of its own queue, never a step's.
# The one list of them: a worker started without -Q consumes exactly these (CELERY_TASK_QUEUES).
NEXUS_QUEUES = env.list("NEXUS_QUEUES", default=["workflows", "events", "trading", "maintenance",
                                                    "notifications"])
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = "django-db"
CELERY_CACHE_BACKEND = "default"
# Celery's Django fix-up closes the database connection around every task unless this is set; it
# then closes it every 2 x this many tasks. Connections are recycled by Django's rules instead
# (CONN_MAX_AGE, health checks: nexus_project/task_connections.py); the count is only a backstop.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100_000)
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=3 * 24 * 3600)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Redis priorities: 0 is consumed first. A workflow's priority p (0..10, 10 most urgent)
# maps to Celery priority 9 - min(p, 9) (see workflows_app.services.dispatch).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "priority_steps": list(range(10)),
    "sep": ":",
    # round_robin: a worker consuming several queues takes them in turn, so none starves behind
    # another's backlog ("priority" took a queue only when every queue before it was empty).
    "queue_order_strategy": "round_robin",
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_TASK_DEFAULT_PRIORITY = 4
CELERY_TASK_DEFAULT_QUEUE = "workflows"
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in NEXUS_QUEUES]
CELERY_TASK_ROUTES = {
    "nexus.engine.*": {"queue": "workflows"},
    "nexus.events.*": {"queue": "events"},
    "nexus.trading.*": {"queue": "trading"},
    "nexus.maintenance.*": {"queue": "maintenance"},
    "nexus.notifications.*": {"queue": "notifications"},
}
CELERY_BEAT_SCHEDULER = "workflows_app.beat:NexusScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = env.int("CELERY_BEAT_MAX_LOOP_INTERVAL", default=5)

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "workflows_app.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["workflows_app.api.parsers.JSONBodyParser"],
    "DEFAULT_THROTTLE_CLASSES": ["workflows_app.api.throttles.WriteRateThrottle"],  # unsafe methods only
}
# Throttles of the REST face (workflows_app.api.throttles): writes per user, the webhook per address.
NEXUS_API_WRITE_RATE = env("NEXUS_API_WRITE_RATE", default="120/min")
NEXUS_API_WEBHOOK_RATE = env("NEXUS_API_WEBHOOK_RATE", default="600/min")
NEXUS_API_LOGIN_RATE = env("NEXUS_API_LOGIN_RATE", default="10/min")
NEXUS_DASHBOARD_REFRESH_SECONDS = env.int("NEXUS_DASHBOARD_REFRESH_SECONDS", default=5)
# Extra scrape-time collectors served at /metrics (the engine never imports trading_app itself).
NEXUS_METRICS_COLLECTORS = ["trading_app.metrics.OrdersCollector"]
SPECTACULAR_SETTINGS = {
    "TITLE": "Nexus API", "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "workflows_app.api.schema.add_error_responses"],
}

# --- Static ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Charts: plotly.js as the plotly package ships it, served locally (no CDN): vendor/plotly/plotly.min.js.
# Found without importing plotly (43 ms at every process start: web, each worker, beat, manage.py).
STATICFILES_DIRS = [("vendor/plotly", Path(importlib.util.find_spec("plotly").origin).parent / "package_data")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Nexus ----------------------------------------------------------------------------------
NEXUS_FLOWER_URL = env("NEXUS_FLOWER_URL", default="http://127.0.0.1:5555/")
# Sync workflow_execute waits at most this long before replying with the running status.
NEXUS_SYNC_WAIT_SECONDS = env.float("NEXUS_SYNC_WAIT_SECONDS", default=30.0)
# Reconciler: a step with no progress for its timeout plus this margin is re-dispatched.
NEXUS_RECONCILE_MARGIN_SECONDS = env.int("NEXUS_RECONCILE_MARGIN_SECONDS", default=30)
# A sequential step starting within this many seconds of the last committed heartbeat writes its start
# with its outcome (one commit per step); capped by the reconcile margin (engine.runner.start_grace).
NEXUS_STEP_START_GRACE_SECONDS = env.int("NEXUS_STEP_START_GRACE_SECONDS", default=10)
# PostgreSQL: a sequential step's completion, when it is not the last, commits without waiting for the
# WAL flush (SET LOCAL synchronous_commit = off); a database crash may lose it, and the reconciler
# re-runs that step (engine.runner.async_commit says why that is safe). False: every commit waits.
NEXUS_ASYNC_STEP_COMMIT = env.bool("NEXUS_ASYNC_STEP_COMMIT", default=True)
NEXUS_STEP_DEFAULT_TIMEOUT = env.int("NEXUS_STEP_DEFAULT_TIMEOUT", default=120)
# Ceilings no definition can raise: subprocess nesting, and the size of one step's stored output.
NEXUS_MAX_SUBPROCESS_DEPTH = env.int("NEXUS_MAX_SUBPROCESS_DEPTH", default=8)
NEXUS_MAX_STEP_OUTPUT_BYTES = env.int("NEXUS_MAX_STEP_OUTPUT_BYTES", default=256 * 1024)
# A database or Redis error on a step's path is retried this many times (backoff doubling to the cap)
# before the execution fails with an `infrastructure` dead letter.
NEXUS_INFRA_MAX_RETRIES = env.int("NEXUS_INFRA_MAX_RETRIES", default=8)
NEXUS_INFRA_BACKOFF = env.float("NEXUS_INFRA_BACKOFF", default=1.0)
NEXUS_INFRA_BACKOFF_MAX = env.float("NEXUS_INFRA_BACKOFF_MAX", default=60.0)
# Unit prices for the cost breakdown in workflow_metrics (the specification's figures).
NEXUS_COST_PER_EXECUTION = env.float("NEXUS_COST_PER_EXECUTION", default=0.001)
NEXUS_COST_PER_MESSAGE = env.float("NEXUS_COST_PER_MESSAGE", default=0.00001)
NEXUS_COST_PER_AGENT_MINUTE = env.float("NEXUS_COST_PER_AGENT_MINUTE", default=0.01)
# Availability (workflows_app/services/availability.py): beat samples which processes are alive.
NEXUS_AVAILABILITY_SAMPLE_EVERY = env.float("NEXUS_AVAILABILITY_SAMPLE_EVERY", default=10.0)
NEXUS_AVAILABILITY_RETENTION_DAYS = env.float("NEXUS_AVAILABILITY_RETENTION_DAYS", default=30.0)
NEXUS_AVAILABILITY_REQUIRES = env.list("NEXUS_AVAILABILITY_REQUIRES", default=["worker", "beat", "web"])
NEXUS_AVAILABILITY_WORK_QUEUE = env("NEXUS_AVAILABILITY_WORK_QUEUE", default="workflows")  # a worker must consume it
NEXUS_HEARTBEAT_STALE_AFTER = env.float("NEXUS_HEARTBEAT_STALE_AFTER", default=30.0)  # a silent process is down
# Demo mode (trading_app/demo.py): an eventful simulated world; dead-letter retries back off from 10 s, not 60 s.
NEXUS_DEMO = env.bool("NEXUS_DEMO", default=False)
if NEXUS_DEMO:
    NEXUS_DLQ_RETRY_BASE = env.float("NEXUS_DLQ_RETRY_BASE", default=10.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": env("LOG_LEVEL", default="INFO")},
}

# Housekeeping run by beat is declared by the apps' plugins (beat_jobs, installed at start by
# workflows_app.beat.install_jobs); an entry of the same name here wins over the plugin's.
CELERY_BEAT_SCHEDULE: dict = {}


# App settings: the apps' conf modules hold their names, types and defaults. A variable of the
# environment (or .env) with one of these prefixes, not set above, becomes a setting of that
# name as a string; the app's conf converts it to its type.
APP_SETTING_PREFIXES = ("NEXUS_", "APCA_", "NEWSAPI_", "ALPACA_")


def app_settings_from(environment) -> dict[str, str]:
    return {name: value for name, value in environment.items()
            if name.startswith(APP_SETTING_PREFIXES) and name.isupper()}


for _name, _value in app_settings_from(os.environ).items():
    globals().setdefault(_name, _value)

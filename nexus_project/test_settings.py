"""Settings for the test suite: the real stack, on a Redis database and database name of its own.

NEXUS_TEST_REDIS_DB (default 12) keeps tests off the Redis databases a running stack uses;
NEXUS_TEST_ID lets two suites run side by side (separate test databases).
"""
import os

from nexus_project.runtime import with_db
from nexus_project.settings import *  # noqa: F403
from nexus_project.settings import CACHES, DATABASES, REDIS_SOURCE, REDIS_URL, VAR_DIR, env

if REDIS_SOURCE == "none":
    # No Redis answers (a fresh machine): the suite starts its own embedded one and stops it at exit.
    import atexit

    from nexus_project.runtime import EmbeddedRedis

    _embedded = EmbeddedRedis(VAR_DIR / "test-redis", record=False)
    REDIS_URL = _embedded.start()
    os.environ["REDIS_URL"] = REDIS_URL  # worker subprocesses started by tests use the same server
    atexit.register(_embedded.stop)

TEST_REDIS_DB = env.int("NEXUS_TEST_REDIS_DB", default=12)
TEST_ID = os.environ.get("NEXUS_TEST_ID", "main")
REDIS_URL = with_db(REDIS_URL, TEST_REDIS_DB)
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL
CACHES["default"]["KEY_PREFIX"] = f"nexus-test-{TEST_ID}"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a worker subprocess sees the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{TEST_ID}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_nexus_{TEST_ID}"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

if env.bool("NEXUS_USE_TEST_DB", default=False):
    # A worker subprocess started by the tests connects straight to the test database.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

CELERY_TASK_ALWAYS_EAGER = False  # asserted by tests/conftest.py: never eager
NEXUS_DEMO = False  # tests drive the simulator themselves, whatever the environment says
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
NEXUS_SYNC_WAIT_SECONDS = 20.0

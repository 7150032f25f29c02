"""Create the demo admin user once (credentials from settings, or generated and printed once)."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from nexus_project.runtime import VAR_DIR
from workflows_app import conf


class Command(BaseCommand):
    help = "Create the demo admin user if no superuser exists (NEXUS_ADMIN_USER / NEXUS_ADMIN_PASSWORD)."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = conf.get("NEXUS_ADMIN_USER")
        password = conf.get("NEXUS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
        token = Token.objects.create(user=User.objects.get(username=username))
        note = VAR_DIR / "admin-credentials.txt"
        note.write_text(f"username: {username}\npassword: {password}\napi token: {token.key}\n")
        note.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(
            f"nexus: admin user '{username}' created; password: {password}\n"
            f"nexus: API token: {token.key}   (also saved in {note}, readable only by you)"))

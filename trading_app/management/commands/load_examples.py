"""Create the specification's example workflows and queues (idempotent)."""
import json

from django.core.management.base import BaseCommand, CommandError

from trading_app.examples import load_examples
from workflows_app.errors import OperationError


class Command(BaseCommand):
    help = "Create the specification's workflows and queues that do not exist yet."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        try:
            result = load_examples()
        except OperationError as exc:
            raise CommandError(json.dumps(exc.as_dict())) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for name in result["created"]:
            self.stdout.write(f"created workflow {name}")
        if result["kept"]:
            self.stdout.write(f"already there: {', '.join(result['kept'])}")
        if result["queues"]:
            self.stdout.write(f"queues: {', '.join(result['queues'])}")
        demo = result.get("demo") or {}
        if demo.get("demo"):
            made = ", ".join(demo["created"]) or "demo workflows already there"
            self.stdout.write(f"demo mode (NEXUS_DEMO): {made}; beat entries {', '.join(demo['beat'])}")

"""``python manage.py process_dead_letters [--limit N] [--json]``: apply the dead-letter policies once."""
from __future__ import annotations

from workflows_app.management.commands._base import OperationCommand
from workflows_app.operations.catalogue import field_names


class Command(OperationCommand):
    help = "Apply the dead-letter policies (rate_limit: retry with backoff; invalid_symbol: discard; else alert)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--limit", type=int, help="At most this many dead letters.")
        parser.add_argument("--queue", dest="queue_name", help="Only this queue's dead letters.")

    def handle(self, *args, **options):
        accepted = field_names(self.operation("process_dead_letters").args)
        kwargs = {k: options[k] for k in ("limit", "queue_name") if options[k] is not None and k in accepted}
        reply = self.call("process_dead_letters", **kwargs)
        self.emit(reply, self.human)

    def human(self, r: dict) -> None:
        out = self.stdout.write
        shown = {k: v for k, v in r.items() if k != "success" and not isinstance(v, list | dict)}
        out("processed dead letters: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        for key, value in r.items():
            if isinstance(value, list):
                for item in value:
                    out(f"  {key}: {item}")
            elif isinstance(value, dict):
                out(f"  {key}: {value}")

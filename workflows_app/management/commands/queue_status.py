"""``python manage.py queue_status [QUEUE] [--messages] [--json]``: workflow_queue_status."""
from __future__ import annotations

from workflows_app.management.commands._base import OperationCommand


class Command(OperationCommand):
    help = "Named queues: messages available / in flight, oldest message age, processing rate, dead letters."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("queue_name", nargs="?", help="One queue (default: all).")
        parser.add_argument("--messages", action="store_true", help="include_messages=true.")

    def handle(self, *args, **options):
        kwargs = {"include_messages": options["messages"]}
        if options["queue_name"]:
            kwargs["queue_name"] = options["queue_name"]
        reply = self.call("workflow_queue_status", **kwargs)
        self.emit(reply, self.human)

    def human(self, r: dict) -> None:
        out = self.stdout.write
        out(f"{'queue':<24}{'available':>10}{'in flight':>10}{'oldest s':>10}{'rate/min':>10}{'dead':>7}")
        for q in r.get("queues", []):
            oldest = q.get("oldest_message_age")
            out(f"{q.get('name', ''):<24}{q.get('messages_available', 0):>10}{q.get('messages_in_flight', 0):>10}"
                f"{'-' if oldest is None else oldest:>10}{q.get('processing_rate', 0):>10}"
                f"{q.get('dead_lettered', q.get('dead_letters', 0)) or 0:>7}")
            for message in q.get("messages", []) or []:
                out(f"    {message}")
        out(f"total messages: {r.get('total_messages')}, processing rate: {r.get('processing_rate')}/min")

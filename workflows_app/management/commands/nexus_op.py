"""``python manage.py nexus_op NAME [--args JSON | @file.json] [--json]``: any operation of the catalogue.

``nexus_op --list`` lists the operations with their descriptions; ``nexus_op NAME --schema``
prints the operation's argument schema (the MCP tool's input schema). The caller is trusted
(user=None), as every command.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from workflows_app.management.commands._base import OperationCommand, dumps, parse_json_option
from workflows_app.operations.catalogue import catalogue


class Command(OperationCommand):
    help = "Call any operation of the catalogue with JSON arguments (--list: the operations)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("name", nargs="?", help="The operation, e.g. workflow_list.")
        parser.add_argument("--args", dest="arguments", help="Arguments as a JSON object, or @file.json.")
        parser.add_argument("--list", action="store_true", help="List the operations.")
        parser.add_argument("--schema", action="store_true", help="Print the operation's argument schema.")

    def handle(self, *args, **options):
        if options["list"]:
            for operation in catalogue:
                self.stdout.write(f"{operation.name:<24} {operation.description}")
            return
        if not options["name"]:
            raise CommandError("give an operation name (--list lists them)")
        operation = self.operation(options["name"])
        if options["schema"]:
            self.stdout.write(dumps(operation.input_schema()))
            return
        arguments = parse_json_option(options["arguments"], "--args") or {}
        if not isinstance(arguments, dict):
            raise CommandError("--args must be a JSON object")
        if "user" in arguments:
            raise CommandError("--args may not name a user: commands run as a trusted local caller")
        self.emit(self.call(operation.name, **arguments), lambda reply: self.stdout.write(dumps(reply)))

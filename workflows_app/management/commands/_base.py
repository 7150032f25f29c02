"""Shared plumbing of the CLI face: call an operation, print its dict (--json) or a human summary.

Commands add no logic: they parse options, call an operation of the catalogue
(``workflows_app.operations.catalogue``) as a trusted local caller (user=None) and print. A refused
operation prints its error body and exits with status 1. Every operation is also callable as
``manage.py nexus_op NAME --args JSON``.
"""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

import workflows_app.operations  # noqa: F401 - registers the engine's operations in the catalogue
from workflows_app.errors import OperationError
from workflows_app.operations.catalogue import Operation, catalogue


def dumps(value, *, indent: int | None = 2) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=indent)


def parse_json_option(value: str | None, option: str):
    if value in (None, ""):
        return None
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as handle:
                value = handle.read()
        except OSError as exc:
            raise CommandError(f"{option}: cannot read {value[1:]}: {exc}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option} is not valid JSON: {exc}") from None


class OperationCommand(BaseCommand):
    """Base: --json prints exactly the operation's dict; errors print the error body and exit 1."""

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the operation's reply as JSON.")

    def operation(self, name: str) -> Operation:
        operation = catalogue.get(name)
        if operation is None:
            raise CommandError(f"operation '{name}' is not available in this version of Nexus")
        return operation

    def call(self, name: str, **kwargs) -> dict:
        try:
            return self.operation(name)(user=None, **kwargs)
        except OperationError as exc:
            self.fail(exc)

    def fail(self, exc: OperationError):
        if self.options.get("json"):
            self.stdout.write(dumps(exc.as_dict()))
        else:
            detail = exc.details.get("errors") if isinstance(exc.details, dict) else None
            self.stderr.write(f"error {exc.code}: {exc.message}")
            for item in detail or []:
                self.stderr.write(f"  {item.get('field')}: {item.get('message')}")
        sys.exit(1)

    def execute(self, *args, **options):
        self.options = options
        return super().execute(*args, **options)

    def emit(self, reply: dict, human) -> None:
        if self.options.get("json"):
            self.stdout.write(dumps(reply))
        else:
            human(reply)

    def progress(self, message: str) -> None:
        """Progress goes to stderr, so --json output stays parseable."""
        self.stderr.write(message)
        self.stderr.flush()

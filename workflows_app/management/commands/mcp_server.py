"""``python manage.py mcp_server``: the MCP server over stdio.

stdout carries the protocol and nothing else: logging goes to stderr, and while the server runs the
SDK points fd 1 at stderr so stray prints (from any library) cannot corrupt the wire.
"""
from __future__ import annotations

import logging
import sys

import anyio
from django.core.management.base import BaseCommand

from workflows_app.mcp_server import serve_stdio


class Command(BaseCommand):
    help = "Run the Nexus MCP server over stdio (logs to stderr)."

    def add_arguments(self, parser):
        parser.add_argument("--transport", choices=["stdio"], default="stdio",
                            help="stdio (default). Streamable HTTP is served by the web app at /mcp.")
        parser.add_argument("--log-level", default="WARNING", help="Level of the stderr log (default WARNING).")

    def handle(self, *args, **options):
        root = logging.getLogger()
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
                handler.setStream(sys.stderr)
        root.setLevel(options["log_level"].upper())
        try:
            anyio.run(serve_stdio)
        except KeyboardInterrupt:
            pass

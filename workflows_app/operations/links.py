"""Where a person looks at what a reply names: every reply naming an execution carries its
``execution_url`` (the execution view, a path on this site), so REST, MCP and the CLI all link to it."""
from __future__ import annotations

from django.urls import NoReverseMatch, reverse


def execution_url(execution_id) -> str | None:
    """The execution view; on a site without the UI routes the admin's page of it; else None."""
    for name in ("execution-view", "admin:workflows_app_execution_change"):
        try:
            return reverse(name, args=[str(execution_id)])
        except NoReverseMatch:
            continue
    return None


def with_execution_url(reply: dict, key: str = "execution_id") -> dict:
    if reply.get(key):
        reply["execution_url"] = execution_url(reply[key])
    return reply

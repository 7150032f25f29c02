"""Path updates: ``{"steps[2].params.threshold": 0.8}`` applied to a copy of a definition."""
from __future__ import annotations

import copy
import re
from typing import Any

from workflows_app.errors import OperationError

_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(-?\d+)\]|\[([A-Za-z0-9_.\-]+)\]|\['([^']+)'\]")


def parse_path(path: str) -> list[str | int]:
    """`steps[2].params.threshold` -> ["steps", 2, "params", "threshold"];
    `steps[generate_signals].params.x` -> ["steps", "@generate_signals", "params", "x"]."""
    if not isinstance(path, str) or not path or len(path) > 300:
        raise ValueError("a path must be a non-empty string of at most 300 characters")
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot parse path at {path[pos:]!r}")
        name, number, key, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif number is not None:
            parts.append(int(number))
        else:
            parts.append("@" + (key or quoted))
        pos = match.end()
    if isinstance(parts[0], int) or parts[0].startswith("@"):
        raise ValueError("a path starts with a field name")
    return parts


def _select(container: Any, part: str | int, path: str) -> Any:
    if isinstance(part, int):
        if not isinstance(container, list) or not -len(container) <= part < len(container):
            raise ValueError(f"{path}: index {part} out of range")
        return part
    if part.startswith("@"):
        wanted = part[1:]
        if not isinstance(container, list):
            raise ValueError(f"{path}: [{wanted}] selects by name in a list")
        for index, item in enumerate(container):
            if isinstance(item, dict) and item.get("name") == wanted:
                return index
        raise ValueError(f"{path}: no item named '{wanted}'")
    if not isinstance(container, dict):
        raise ValueError(f"{path}: '{part}' is not inside an object")
    return part


UPDATABLE_ROOTS = {"name", "description", "priority", "queue", "metadata", "steps", "triggers"}


def apply_updates(definition: dict, updates: dict) -> tuple[dict, list[str]]:
    """Apply {path: value} to a copy of `definition`; errors name the path."""
    if not isinstance(updates, dict) or not updates:
        raise OperationError("INVALID_INPUT_DATA", "updates must be a non-empty object of path: value", {"field": "updates"})
    result = copy.deepcopy(definition)
    errors, changed = [], []
    for path, value in updates.items():
        try:
            parts = parse_path(path)
            if parts[0] not in UPDATABLE_ROOTS:
                raise ValueError(f"'{parts[0]}' cannot be updated")
            node: Any = result
            for part in parts[:-1]:
                key = _select(node, part, path)
                if isinstance(key, str) and key not in node:
                    node[key] = {}
                node = node[key]
            last = _select(node, parts[-1], path)
            node[last] = copy.deepcopy(value)
            changed.append(path)
        except ValueError as exc:
            errors.append({"field": f"updates.{path}", "message": str(exc)})
    if errors:
        raise OperationError("INVALID_INPUT_DATA", errors[0]["message"], {"errors": errors})
    return result, changed

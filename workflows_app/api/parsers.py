"""The REST face's only body parser: JSON, refusing what would crash or poison the database."""
from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def has_nul(value) -> bool:
    """NUL characters anywhere (keys included): PostgreSQL text and jsonb cannot store them."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class JSONBodyParser(JSONParser):
    """JSON only; pathological nesting, lone surrogates and NUL characters are a 400, not a crash."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - strings must be valid Unicode (no lone surrogates)") from None
        if has_nul(data):
            raise ParseError("JSON parse error - strings may not contain NUL characters")
        return data

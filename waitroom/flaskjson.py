"""Flask's JSON provider for the office web app and the city's: a body nested deeper than Python's decoder
recurses is malformed JSON like any other.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for ``[[[[...]]]]`` a few thousand levels deep;
werkzeug's ``request.get_json`` only turns ``ValueError`` into a 400 (or None with ``silent=True``), so such
a body, far below the size limit, answered 500 with a traceback in the log.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class JSONProvider(DefaultJSONProvider):
    """``DefaultJSONProvider`` whose ``loads`` raises ``ValueError`` for JSON nested too deeply."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc

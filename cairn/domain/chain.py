"""Tamper evidence: every recorded change carries a hash chained to the previous one."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
_EXCLUDED = {"chain", "originator_topic"}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def link(previous: str, event_type: str, fields: dict[str, Any]) -> str:
    """The hash of one change: its type and every field, bound to the previous hash."""
    body = {k: _canonical(v) for k, v in fields.items() if k not in _EXCLUDED}
    text = json.dumps({"type": event_type, "fields": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((previous + text).encode()).hexdigest()

"""The envelope's edges: what a bus message may carry that HTTP refuses up front."""

from __future__ import annotations

import orjson

from cairn.ingest.envelope import parse_each, quarantine_row


def test_a_too_deep_bus_event_is_quarantined_exactly_as_received() -> None:
    deep: object = 1
    for _ in range(300):  # past orjson's 254 levels
        deep = {"a": deep}
    raw = {"event": "e", "user_id": "u", "properties": {"tree": deep}}
    [problem] = parse_each([raw])
    assert "nested deeper than" in str(problem)
    row = quarantine_row("id", "shop", "e", 0.0, None, [f"bad_envelope:{problem}"], raw)
    assert orjson.loads(row[-1]) == raw

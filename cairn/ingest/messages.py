"""Bus message bodies. One message carries many events, so the broker is not the ceiling.

``rows``: the gateway already validated the request; the body holds the rows as stored.
``raw``: events published by a service hook (the SDK); the consumer validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from cairn.auth import hash_secret
from cairn.ingest.envelope import (
    EV_ID,
    EV_LINE,
    EV_TS,
    EVENT_COLUMNS,
    LEGACY_EVENT_COLUMNS,
    Q_ID,
    Prepared,
)

# Version 2: identities carry their event's id (links are stored with their event).
# Version 3: event rows end with the typed properties (EVENT_COLUMNS).
VERSION = 3


class BadMessage(Exception):
    """The body can never be processed: it goes to the dead-letter queue."""


@dataclass
class RawBatch:
    business_line: str
    key_hash: str
    received_ms: int
    events: list[Any]


def key_hash(secret: str) -> str:
    """What a raw message carries instead of the write key: its stored hash, as hex."""
    return hash_secret(secret).hex()


@dataclass
class Encoded:
    """One business line's rows serialized once (JSON value lists, one per line), their ids
    alongside for de-duplication; ``identities`` pairs each link with its event's id."""

    business_line: str = ""
    event_columns: tuple[str, ...] = EVENT_COLUMNS  # what a line of event_lines holds
    event_ids: list[str] = field(default_factory=list)
    event_lines: list[bytes] = field(default_factory=list)
    quarantine_ids: list[str] = field(default_factory=list)
    quarantine_lines: list[bytes] = field(default_factory=list)
    identities: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    spans: dict[str, list[float]] = field(default_factory=dict)  # line → [min ts, max ts]

    @property
    def size(self) -> int:
        return len(self.event_ids) + len(self.quarantine_ids)


def encode_prepared(prepared: Prepared, business_line: str) -> Encoded:
    out = Encoded(business_line, client_ids=prepared.client_ids,
                  identities=prepared.identities)
    dumps = orjson.dumps
    for row in prepared.events:
        out.event_ids.append(row[EV_ID])
        out.event_lines.append(dumps(row))
        ts = row[EV_TS]
        span = out.spans.get(row[EV_LINE])
        if span is None:
            out.spans[row[EV_LINE]] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
    for row in prepared.quarantine:
        out.quarantine_ids.append(row[Q_ID])
        out.quarantine_lines.append(dumps(row))
    return out


def encode_rows(business_line: str, prepared: Prepared) -> bytes:
    """A header line, then one JSON line per stored row (events first, then quarantine)."""
    rows = encode_prepared(prepared, business_line)
    header = orjson.dumps({
        "v": VERSION, "kind": "rows", "business_line": business_line,
        "event_ids": rows.event_ids, "quarantine_ids": rows.quarantine_ids,
        "identities": [[ident, row] for ident, row in rows.identities],
        "client_ids": rows.client_ids, "spans": rows.spans,
    })
    return b"\n".join([header, *rows.event_lines, *rows.quarantine_lines])


def encode_raw(batch: RawBatch) -> bytes:
    return orjson.dumps({
        "v": VERSION, "kind": "raw", "business_line": batch.business_line,
        "key_hash": batch.key_hash, "received_ms": batch.received_ms, "events": batch.events,
    })


def _links(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if doc["v"] == 1:  # version 1 carried bare links: stored whatever happens to the event
        return [("", dict(r)) for r in doc["identities"]]
    return [(str(i), dict(r)) for i, r in doc["identities"]]


def decode(body: bytes) -> Encoded | RawBatch:
    try:
        head, _, rest = body.partition(b"\n")
        doc = orjson.loads(head)
        if not isinstance(doc, dict) or doc.get("v") not in (1, 2, VERSION):
            raise BadMessage(f"not a version-1 to -{VERSION} Cairn message")
        if doc["kind"] == "rows":
            event_ids, quarantine_ids = list(doc["event_ids"]), list(doc["quarantine_ids"])
            lines = rest.split(b"\n") if rest else []
            if len(lines) != len(event_ids) + len(quarantine_ids):
                raise BadMessage("rows message: line count does not match its ids")
            n = len(event_ids)
            columns = EVENT_COLUMNS if doc["v"] >= 3 else LEGACY_EVENT_COLUMNS
            return Encoded(str(doc["business_line"]), columns, event_ids, lines[:n],
                           quarantine_ids, lines[n:], _links(doc),
                           list(doc["client_ids"]), dict(doc["spans"]))
        if doc["kind"] == "raw":
            events = doc["events"]
            if not isinstance(events, list):
                raise BadMessage("raw message: events must be an array")
            return RawBatch(str(doc["business_line"]), str(doc["key_hash"]),
                            int(doc["received_ms"]), events)
        raise BadMessage(f"unknown message kind {doc['kind']!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"undecodable message: {type(exc).__name__}: {exc}") from None

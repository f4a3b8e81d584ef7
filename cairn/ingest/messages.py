"""Bus message bodies. One message carries many events, so the broker is not the ceiling.

``rows``: the gateway already validated the request; the body holds the rows as stored.
``raw``: events published by a service hook (the SDK); the consumer validates them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from cairn.ingest.envelope import Prepared

VERSION = 1


class BadMessage(Exception):
    """The body can never be processed: it goes to the dead-letter queue."""


@dataclass
class RawBatch:
    business_line: str
    key_hash: str
    received_ms: int
    events: list[Any]


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def encode_rows(business_line: str, prepared: Prepared) -> bytes:
    return orjson.dumps({
        "v": VERSION, "kind": "rows", "business_line": business_line,
        "events": prepared.events, "quarantine": prepared.quarantine,
        "identities": prepared.identities, "client_ids": prepared.client_ids,
    })


def encode_raw(batch: RawBatch) -> bytes:
    return orjson.dumps({
        "v": VERSION, "kind": "raw", "business_line": batch.business_line,
        "key_hash": batch.key_hash, "received_ms": batch.received_ms, "events": batch.events,
    })


def decode(body: bytes) -> Prepared | RawBatch:
    try:
        doc = orjson.loads(body)
        if not isinstance(doc, dict) or doc.get("v") != VERSION:
            raise BadMessage(f"not a version-{VERSION} Cairn message")
        if doc["kind"] == "rows":
            return Prepared(list(doc["events"]), list(doc["quarantine"]),
                            list(doc["identities"]), list(doc["client_ids"]))
        if doc["kind"] == "raw":
            events = doc["events"]
            if not isinstance(events, list):
                raise BadMessage("raw message: events must be an array")
            return RawBatch(str(doc["business_line"]), str(doc["key_hash"]),
                            int(doc["received_ms"]), events)
        raise BadMessage(f"unknown message kind {doc['kind']!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"undecodable message: {type(exc).__name__}: {exc}") from None

"""The tracking-event envelope (tracking-event.md): parsing, and rows for ClickHouse.

A request body is one event object or ``{"batch": [...]}``. The envelope is checked with
pydantic (first problem named, nothing stored); the properties are then validated against
the registry, and every event becomes a row of ``events`` or of ``quarantine``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, Required
from uuid import UUID

import orjson
from pydantic import ConfigDict, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticError
from typing_extensions import TypedDict

from cairn.errors import TooLarge, ValidationFailed
from cairn.ingest.validation import IDENTIFY, MAX_FUTURE_MS, LiveSchema, to_epoch_ms, validate

MAX_EVENTS = 1000
MAX_BYTES = 1 << 20
ID_NAMESPACE = uuid.UUID("5b1f4a52-3c1e-4d7a-9a0e-6f9b3c2d1e07")


# PostgreSQL refuses NUL in text (the registry looks names up there): no envelope string
# may hold one. Properties may nest, but not without end (orjson writes 254 levels at most).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
MAX_DEPTH = 32


class EventIn(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    event: Required[Text]
    business_line: NotRequired[Text | None]
    user_id: NotRequired[Text | None]
    anonymous_id: NotRequired[Text | None]
    session_id: NotRequired[Text | None]
    timestamp: NotRequired[Any]  # checked later: a bad one quarantines, it does not reject
    event_id: NotRequired[UUID | None]
    platform: NotRequired[Text | None]
    app_version: NotRequired[Text | None]
    properties: NotRequired[dict[str, Any] | None]


_ONE = TypeAdapter(EventIn)
_MANY = TypeAdapter(list[EventIn])


def _where(loc: Sequence[int | str], batch: bool) -> str:
    parts = list(loc)
    head = f"batch[{parts.pop(0)}]" if batch and parts and isinstance(parts[0], int) else ""
    if not batch and parts and isinstance(parts[0], int):
        parts.pop(0)
    path = ".".join(str(p) for p in parts)
    return ".".join(p for p in (head, path) if p) or "body"


def _problem(exc: PydanticError, batch: bool) -> ValidationFailed:
    first = exc.errors()[0]
    message = ("must not contain a NUL byte" if first["type"] == "string_pattern_mismatch"
               else first["msg"])
    return ValidationFailed(f"{_where(first['loc'], batch)}: {message}")


def _too_deep(value: Any, room: int) -> bool:
    """True when ``value`` nests more than ``room`` objects/arrays deep."""
    if room < 0:
        return True
    items = value.values() if type(value) is dict else value
    return any(_too_deep(v, room - 1) for v in items if type(v) in (dict, list))


def check_event(event: EventIn, where: str) -> None:
    """What pydantic's types cannot say: a non-empty name, at least one id, property names
    without NUL bytes and values nested at most MAX_DEPTH levels."""
    if not event["event"].strip():
        raise ValidationFailed(f"{where}event: must not be empty")
    if not event.get("user_id") and not event.get("anonymous_id"):
        raise ValidationFailed(f"{where}user_id or anonymous_id is required")
    props = event.get("properties")
    if props:
        for key, value in props.items():
            if "\x00" in key:
                raise ValidationFailed(f"{where}properties: a name must not contain a NUL "
                                       "byte")
            if type(value) in (dict, list) and _too_deep(value, MAX_DEPTH - 1):
                raise ValidationFailed(f"{where}properties.{key}: nested deeper than "
                                       f"{MAX_DEPTH} levels")


def parse_body(body: bytes) -> tuple[list[EventIn], list[dict[str, Any]]]:
    """The envelope's events and the raw objects as received; ValidationFailed/TooLarge."""
    if len(body) > MAX_BYTES:
        raise TooLarge(f"body is {len(body)} bytes; the limit is {MAX_BYTES}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"malformed JSON: {exc}") from None
    batch = isinstance(doc, dict) and "batch" in doc
    if batch:
        if len(doc) != 1:
            raise ValidationFailed('a batch body holds only the key "batch"')
        items = doc["batch"]
        if not isinstance(items, list) or not items:
            raise ValidationFailed("batch must be a non-empty array of events")
        if len(items) > MAX_EVENTS:
            raise TooLarge(f"batch holds {len(items)} events; the limit is {MAX_EVENTS}")
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise ValidationFailed('body must be an event object or {"batch": [event, ...]}')
    try:
        events = _MANY.validate_python(items)
    except PydanticError as exc:
        raise _problem(exc, batch) from None
    for i, event in enumerate(events):
        check_event(event, f"batch[{i}]: " if batch else "")
    return events, items


def parse_one(item: Any) -> EventIn:
    """One event of a bus message; ValidationFailed names the problem."""
    try:
        event = _ONE.validate_python(item)
    except PydanticError as exc:
        raise _problem(exc, False) from None
    check_event(event, "")
    return event


def parse_each(items: Sequence[Any]) -> list[EventIn | ValidationFailed]:
    """Each bus event parsed on its own merits: an event, or the problem that stops it."""
    try:  # one call for the usual all-good message
        whole: list[EventIn] | None = _MANY.validate_python(items)
    except PydanticError:
        whole = None
    out: list[EventIn | ValidationFailed] = []
    for i, item in enumerate(items):
        try:
            if whole is None:
                out.append(parse_one(item))
            else:
                check_event(whole[i], "")
                out.append(whole[i])
        except ValidationFailed as exc:
            out.append(exc)
    return out


# Rows travel as value lists in these column orders (JSONCompactEachRow): no key per value
# to build, serialize or parse.
EVENT_COLUMNS = ("event_id", "business_line", "event", "timestamp", "received_at", "user_id",
                 "anonymous_id", "person_id", "session_id", "platform", "app_version",
                 "definition_version", "warnings", "properties", "properties_json", "level",
                 "typed_props")
# Rows of messages written before typed properties existed (version 1 and 2 messages).
LEGACY_EVENT_COLUMNS = EVENT_COLUMNS[:-1]
QUARANTINE_COLUMNS = ("event_id", "business_line", "event", "received_at", "timestamp",
                      "reasons", "payload")
EV_ID, EV_LINE, EV_TS = 0, 1, 3
Q_ID = 0


@dataclass
class Prepared:
    """One request's (or message's) rows, ready for the sink (value lists, see *_COLUMNS).

    ``identities`` pairs each link with the id of the identify event it came from, so the
    sink stores the link exactly when it stores the event."""

    events: list[list[Any]] = field(default_factory=list)
    quarantine: list[list[Any]] = field(default_factory=list)
    identities: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)  # ids the client chose: may repeat


Lookup = Callable[[str, str], LiveSchema | None]


def quarantine_row(event_id: str, business_line: str, name: str, received: float,
                   timestamp: float | None, reasons: list[str], raw: Any) -> list[Any]:
    """A ``quarantine`` row (QUARANTINE_COLUMNS): the event exactly as received, and why."""
    return [event_id, business_line, name, received, timestamp, reasons, _as_received(raw)]


def _as_received(raw: Any) -> str:
    try:
        return orjson.dumps(raw).decode()
    except TypeError:  # orjson writes 254 levels at most: the standard library goes deeper
        try:
            return json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        except (RecursionError, ValueError, TypeError):
            return '"(nested too deeply to keep)"'


def typed_values(props: dict[str, Any], schema: LiveSchema | None) -> dict[str, float]:
    """The properties the validated schema declares NUMBER, INTEGER, BOOLEAN (1/0) or
    DATETIME (epoch milliseconds), as numbers: analyses read them without parsing text."""
    if schema is None or not props:
        return {}
    out: dict[str, float] = {}
    for key, value in props.items():
        spec = schema.props.get(key)
        if spec is None or value is None:
            continue
        kind = spec.type
        if kind in ("NUMBER", "INTEGER"):
            out[key] = float(value)
        elif kind == "BOOLEAN":
            out[key] = 1.0 if value else 0.0
        elif kind == "DATETIME":
            ms = to_epoch_ms(value)
            if ms is not None:
                out[key] = float(ms)
    return out


def _text(value: Any) -> str:
    return value if type(value) is str else orjson.dumps(value).decode()


def _random_id() -> str:
    """A random (version 4) UUID as text, without uuid.UUID's per-call overhead."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def derived_id(seed: str, index: int) -> str:
    """The id of the event at ``index`` of a message without one: stable across deliveries."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{seed}:{index}"))


def prepare(events: Sequence[EventIn], raws: Sequence[Any], business_line: str,
            received_ms: int, lookup: Lookup, into: Prepared | None = None,
            id_seed: str | None = None, ids: Sequence[str] | None = None) -> Prepared:
    """Validate each event against the registry and shape its row.

    Events without an ``event_id`` get a random one, or with ``id_seed`` one derived from
    the seed and their position (so a redelivered message yields the same ids); ``ids``
    (a replay of stored events) fixes every event's id. A timestamp more than 24 hours
    after ``received_ms`` is a ``bad_timestamp``.
    """
    out = into if into is not None else Prepared()
    received = received_ms / 1000
    latest_ms = received_ms + MAX_FUTURE_MS
    for index, (event, raw) in enumerate(zip(events, raws, strict=True)):
        name = event["event"]
        given_id = event.get("event_id")
        if ids is not None:
            event_id = ids[index]
        elif given_id is not None:
            event_id = str(given_id)
            out.client_ids.append(event_id)
        elif id_seed is not None:
            event_id = derived_id(id_seed, index)
        else:
            event_id = _random_id()
        props = event.get("properties") or {}
        outcome = validate(name, props, lookup(business_line, name))
        stamp = event.get("timestamp")
        ts_ms = received_ms if stamp is None else to_epoch_ms(stamp)
        if ts_ms is None or ts_ms > latest_ms:
            outcome.reasons.append("bad_timestamp")
        if outcome.reasons:
            out.quarantine.append(quarantine_row(
                event_id, business_line, name, received,
                None if ts_ms is None else ts_ms / 1000, outcome.reasons, raw))
            continue
        user = event.get("user_id") or ""
        anon = event.get("anonymous_id") or ""
        schema = outcome.schema
        ts = ts_ms / 1000  # type: ignore[operator]
        out.events.append([
            event_id, business_line, name, ts, received, user, anon, user or anon,
            event.get("session_id") or "", event.get("platform") or "",
            event.get("app_version") or "", schema.version or "" if schema else "",
            outcome.warnings, {k: _text(v) for k, v in props.items() if v is not None},
            orjson.dumps(props).decode() if props else "", schema.level if schema else "B",
            typed_values(props, schema),
        ])
        if name == IDENTIFY and user and anon:
            # Links are ordered by the time Cairn received them, never the client's clock.
            out.identities.append((event_id, {"business_line": business_line,
                                              "anonymous_id": anon, "user_id": user,
                                              "linked_at": received}))
    return out

"""The ingestion side of a session: events sent with its key are captured, never stored.

The HTTP gateway hands a session key's request here once the envelope is parsed and the
business line checked (``Capture.http``); the bus consumer offers every SDK message here
first (``Capture.bus``), which takes the ones published with a session key. Production
traffic pays one attribute comparison (the gateway) or one cached key look-up (the
consumer). Events are judged here, against the session's plan, and stored in the session
(``cairn.autotest.postgres``), each event id once.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from cairn.auth import Principal, Role
from cairn.autotest.plan import Plan, flow_of, judge
from cairn.autotest.postgres import CaptureResult, Incoming, SessionFinished, SessionStore
from cairn.errors import CairnError, TooLarge, Unauthenticated, ValidationFailed
from cairn.ingest.bus import Delivery
from cairn.ingest.envelope import ID_NAMESPACE, EventIn, derived_id, parse_each
from cairn.ingest.keys import WriteKeys
from cairn.ingest.messages import RawBatch
from cairn.ingest.registry import Registry
from cairn.ingest.validation import IDENTIFY, to_epoch_ms


@dataclass(frozen=True)
class Open:
    """A session as capture needs it (immutable once started: cached)."""

    id: UUID
    business_line: str
    plan: Plan


def _payload(raw: Any) -> str:
    try:
        return orjson.dumps(raw).decode()
    except TypeError:  # nested past orjson's limit (the envelope allows less; bus events)
        return '"(nested too deeply to keep)"'


class Capture:
    def __init__(self, store: SessionStore, registry: Registry, keys: WriteKeys) -> None:
        self._store = store
        self._registry = registry
        self._keys = keys
        self._sessions: OrderedDict[UUID, Open] = OrderedDict()
        self.captured = 0  # events stored (tests, metrics)

    async def session_of(self, principal: Principal) -> Open:
        """The session behind a session key (its plan never changes, so it is cached; the
        session's status is checked by every capture, in its transaction)."""
        hit = self._sessions.get(principal.token_id)
        if hit is not None:
            return hit
        row = await self._store.by_key(principal.token_id)
        if row is None:
            raise Unauthenticated("no test session has this key")
        found = Open(row["id"], row["business_line"], Plan.from_json(orjson.loads(row["plan"])))
        self._sessions[principal.token_id] = found
        while len(self._sessions) > 1000:
            self._sessions.popitem(last=False)
        return found

    async def _judged(self, session: Open, events: Sequence[EventIn], raws: Sequence[Any],
                      received_ms: int, ids: Sequence[str]) -> list[Incoming]:
        plan = session.plan
        outside = {e["event"] for e in events} - set(plan.tested) - {IDENTIFY}
        for name in outside:  # registered in the line? (the registry holds every stage)
            await self._registry.ensure(session.business_line, name)
        received = datetime.fromtimestamp(received_ms / 1000, tz=UTC)
        out = []
        for event, raw, ident in zip(events, raws, ids, strict=True):
            name = event["event"]
            stamp = event.get("timestamp")
            ts_ms = received_ms if stamp is None else to_epoch_ms(stamp)
            registered = self._registry.get(session.business_line, name) is not None
            verdict = judge(plan, name, event.get("properties"), ts_ms, received_ms,
                            registered)
            out.append(Incoming(
                ident, name, flow_of(event.get("session_id"), event.get("anonymous_id"),
                                     event.get("user_id")),
                received, received_ms if ts_ms is None else ts_ms, verdict.version,
                verdict.reasons, verdict.warnings, _payload(raw)))
        return out

    async def http(self, principal: Principal, events: Sequence[EventIn],
                   raws: Sequence[Any]) -> dict[str, Any]:
        """A gateway request with a session key: the 202 answer once it is captured."""
        session = await self.session_of(principal)
        received_ms = int(time.time() * 1000)
        ids = [str(e.get("event_id") or uuid.uuid4()) for e in events]
        incoming = await self._judged(session, events, raws, received_ms, ids)
        await self._store.capture(session.id, uuid.uuid4().hex, "http", incoming)
        self.captured += len(incoming)
        invalid = sum(1 for e in incoming if e.reasons)
        return {"accepted": len(incoming) - invalid, "invalid": invalid,
                "testSession": str(session.id)}

    async def bus(self, batch: RawBatch, delivery: Delivery) -> bool:
        """Take and settle ``delivery`` if a session key published it (else False: it is
        production traffic, left to the sink)."""
        try:
            principal = await self._keys.by_hash(bytes.fromhex(batch.key_hash))
        except (CairnError, ValueError):
            return False  # the sink refuses it like any unknown key
        if principal.role is not Role.SESSION:
            return False
        # A message without an id (not one of Cairn's publishers) is known by its body.
        message_id = delivery.message_id or hashlib.sha256(delivery.body).hexdigest()
        try:
            result = await self._bus_events(principal, batch, message_id)
        except (SessionFinished, Unauthenticated, TooLarge) as exc:
            await delivery.dead_letter(f"test session: {exc}")
            return True
        self.captured += result.stored
        await delivery.ack()
        return True

    async def _bus_events(self, principal: Principal, batch: RawBatch,
                          message_id: str) -> CaptureResult:
        session = await self.session_of(principal)
        if batch.business_line != session.business_line:
            raise Unauthenticated(f"the session key is not for {batch.business_line!r}")
        good: list[EventIn] = []
        raws: list[Any] = []
        ids: list[str] = []
        bad: list[Incoming] = []
        received = datetime.fromtimestamp(batch.received_ms / 1000, tz=UTC)
        for index, (raw, event) in enumerate(zip(batch.events, parse_each(batch.events),
                                                 strict=True)):
            if not isinstance(event, ValidationFailed):
                line = event.get("business_line")
                if line not in (None, batch.business_line):
                    event = ValidationFailed(f"business_line {line!r} is not the key's")
            if isinstance(event, ValidationFailed):
                name = raw.get("event") if isinstance(raw, dict) else None
                bad.append(Incoming(
                    str(uuid.uuid5(ID_NAMESPACE, f"{message_id}:bad:{index}")),
                    name if isinstance(name, str) else "", "", received, batch.received_ms,
                    None, [f"bad_envelope:{event}"], [], _payload(raw)))
                continue
            good.append(event)
            raws.append(raw)
            # Ids the publisher left out derive from the message id, as the sink does.
            given = event.get("event_id")
            ids.append(str(given) if given is not None else derived_id(message_id, index))
        incoming = await self._judged(session, good, raws, batch.received_ms, ids)
        return await self._store.capture(session.id, message_id, "bus", [*incoming, *bad])

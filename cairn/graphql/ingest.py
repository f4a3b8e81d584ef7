"""Ingestion over GraphQL: write keys (admin), the quarantine listing and its replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
import strawberry
from strawberry.scalars import JSON

from cairn.auth import Role
from cairn.errors import NotFound, ValidationFailed
from cairn.graphql.admitted import admitted
from cairn.graphql.context import Info
from cairn.ingest.replay import ReplayRequest
from cairn.olap.port import ClickHouse
from cairn.olap.queries.common import SETTINGS, utc

MAX_QUARANTINE_LIMIT = 1000


@strawberry.type
class QuarantinedEvent:
    event_id: strawberry.ID
    event: str
    business_line: str
    received_at: datetime
    reasons: list[str]
    payload: JSON = strawberry.field(description="The event exactly as received.")


@strawberry.type
class QuarantinePage:
    total: int
    items: list[QuarantinedEvent]


@strawberry.type(description="A write key's metadata; the secret is shown only at creation.")
class WriteKey:
    id: strawberry.ID
    business_line: str
    label: str | None
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None


def _page_sql(line: str | None, event: str | None, start: datetime | None,
              end: datetime | None) -> tuple[str, dict[str, Any]]:
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    for column, value, kind in (("business_line", line, "String"), ("event", event, "String")):
        if value is not None:
            where.append(f"{column} = {{{column}:{kind}}}")
            params[column] = value
    if start is not None:
        where.append("received_at >= {start:DateTime64(3, 'UTC')}")
        params["start"] = utc(start)
    if end is not None:
        where.append("received_at < {end:DateTime64(3, 'UTC')}")
        params["end"] = utc(end)
    return " AND ".join(where), params


@strawberry.type
class IngestQuery:
    @strawberry.field(description="Newest first; `total` counts every match, `items` at most "
                      "`limit` (≤ 1000) of them. from/to filter receivedAt, half-open.")
    async def quarantine(
        self, info: Info, business_line: str | None = None, event: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None, limit: int | None = 100,
    ) -> QuarantinePage:
        line = info.context.caller().read_scope(business_line)
        limit = 100 if limit is None else limit
        if not 0 <= limit <= MAX_QUARANTINE_LIMIT:
            raise ValidationFailed(f"limit must be between 0 and {MAX_QUARANTINE_LIMIT}")
        if from_ is not None and to is not None and utc(from_) >= utc(to):
            raise ValidationFailed("from must be before to")
        where, params = _page_sql(line, event, from_, to)

        async def page(olap: ClickHouse) -> QuarantinePage:
            total = await olap.fetchval(
                f"SELECT count() FROM quarantine WHERE {where}{SETTINGS}", params)
            rows = await olap.fetch(
                "SELECT toString(event_id) AS event_id, event, business_line, "
                "toUnixTimestamp64Milli(received_at) AS received_ms, reasons, payload "
                f"FROM quarantine WHERE {where} ORDER BY received_at DESC, event_id "
                f"LIMIT {{limit:UInt32}}{SETTINGS}", {**params, "limit": limit})
            return QuarantinePage(total=int(total or 0), items=[
                QuarantinedEvent(
                    event_id=strawberry.ID(r["event_id"]), event=r["event"],
                    business_line=r["business_line"],
                    received_at=datetime.fromtimestamp(int(r["received_ms"]) / 1000, tz=UTC),
                    reasons=list(r["reasons"]), payload=orjson.loads(r["payload"]))
                for r in rows])

        # Up to 1,000 payloads to parse: admitted like an analysis, and shaped off-loop.
        return await admitted(info, page)

    @strawberry.field(description="Admin only: the write keys, optionally of one line.")
    async def write_keys(self, info: Info, business_line: str | None = None) -> list[WriteKey]:
        who = info.context.caller()
        line = who.business_line if business_line is None else business_line
        who.require_admin(line)
        rows = await info.context.container.tokens.list("write", line)
        return [WriteKey(id=strawberry.ID(str(r["id"])), business_line=r["business_line"],
                         label=r["label"], created_by=r["created_by"],
                         created_at=r["created_at"], revoked_at=r["revoked_at"])
                for r in rows]


@strawberry.input(description="Re-validates matching quarantined events against today's "
                  "live definitions; from/to are on the time Cairn received them.")
class ReplayInput:
    business_line: str
    event: str | None = None
    reasons: list[str] | None = strawberry.field(
        default=None, description="only events quarantined for one of these reasons")
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    dry_run: bool = False


@strawberry.type
class ReplayResult:
    examined: int
    now_valid: int = strawberry.field(description="stored in the main table by this replay "
                                      "(dry run: would be)")
    still_invalid: int
    already_stored: int = strawberry.field(description="passing events a previous replay had "
                                           "stored already: left quarantine now")


@strawberry.type
class IngestMutation:
    @strawberry.mutation(description="Editors of the line and admins. Events that now pass "
                         "are stored exactly once (a second replay stores nothing more) and "
                         "leave quarantine; the rest stay. dryRun reports without storing.")
    async def replay_quarantine(self, info: Info, input: ReplayInput) -> ReplayResult:
        who = info.context.caller()
        who.require_edit(input.business_line)
        ingest = info.context.container.ingest
        if ingest is None:
            raise ValidationFailed("ingestion is not running in this process")
        done = await ingest.replay.run(ReplayRequest(
            business_line=input.business_line, event=input.event,
            reasons=tuple(input.reasons or ()),
            start=utc(input.from_) if input.from_ is not None else None,
            end=utc(input.to) if input.to is not None else None, dry_run=input.dry_run))
        return ReplayResult(examined=done.examined, now_valid=done.now_valid,
                            still_invalid=done.still_invalid,
                            already_stored=done.already_stored)

    @strawberry.mutation(description="Admin only. Returns the secret once; ingestion requests "
                         "for that business line carry it (see tracking-event.md).")
    async def create_write_key(self, info: Info, business_line: str,
                               label: str | None = None) -> str:
        who = info.context.caller()
        who.require_admin(business_line)
        if not business_line.strip():
            raise ValidationFailed("businessLine must not be empty")
        return await info.context.container.tokens.create(
            kind="write", role=Role.WRITER, business_line=business_line, label=label,
            created_by=who.name)

    @strawberry.mutation(description="Admin only. The key stops working within seconds "
                         "(gateways cache keys for 5 s).")
    async def revoke_write_key(self, info: Info, id: strawberry.ID) -> bool:
        who = info.context.caller()
        who.require_admin(who.business_line)
        try:
            token_id = UUID(str(id))
        except ValueError:
            raise ValidationFailed(f"not a write key id: {id}") from None
        found = await info.context.container.tokens.kind_of(token_id)
        if found is None or found[0] != "write":
            raise NotFound(f"no write key {id}")
        who.require_admin(found[1])
        return await info.context.container.tokens.revoke(token_id)

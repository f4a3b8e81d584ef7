"""One person's events, newest first, with every linked identity merged.

``events`` is ordered by (business_line, person_id, timestamp), so reading a handful of
person ids touches a few granules only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.common import DT, fetch, utc
from cairn.olap.queries.filters import Binder

MAX_LIMIT = 1000
# One round trip: the id's person (its latest link, or itself), then every anonymous id
# that person was ever linked to, each with its own latest link (a later link elsewhere wins).
# Every lookup is by a table's key: identities by anonymous id, identities_by_user by user.
IDENTITY_SQL = """SELECT anonymous_id, argMax(user_id, linked_at) AS linked_to FROM identities
    WHERE anonymous_id IN (
        SELECT {user:String}
        UNION ALL
        SELECT anonymous_id FROM identities_by_user WHERE user_id = (
            SELECT if(r != '', r, {user:String}) FROM (
                SELECT argMax(user_id, linked_at) AS r FROM identities
                WHERE anonymous_id = {user:String})))
    GROUP BY anonymous_id"""


class TimelineQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: str
    business_line: str | None = None
    from_: datetime | None = None
    to: datetime | None = None
    limit: int = 200

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value is not None else None

    @model_validator(mode="after")
    def _shape(self) -> TimelineQuery:
        if not self.user:
            raise ValidationFailed("`user` must not be empty")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}")
        return self

    def to_sql(self, ids: list[str]) -> tuple[str, dict[str, Param]]:
        b = Binder()
        where = [f"person_id IN {b.bind(ids, 'Array(String)')}"]
        if self.business_line is not None:
            where.insert(0, f"business_line = {b.bind(self.business_line, 'String')}")
        if self.from_ is not None:
            where.append(f"timestamp >= {b.bind(self.from_, DT)}")
        if self.to is not None:
            where.append(f"timestamp < {b.bind(self.to, DT)}")
        sql = ("SELECT toString(event_id) AS event_id, event, business_line, user_id, "
               "anonymous_id, session_id, toUnixTimestamp64Milli(timestamp) AS ts, platform, "
               f"app_version, properties, properties_json FROM events WHERE {' AND '.join(where)} "
               f"ORDER BY timestamp DESC, event_id LIMIT {b.bind(self.limit, 'UInt32')}")
        return sql, b.params

    async def identities(self, store: ClickHouse) -> list[str]:
        """The user id this id resolves to, and every anonymous id linked to it."""
        rows = await fetch(store, IDENTITY_SQL, {"user": self.user})
        links = {r["anonymous_id"]: r["linked_to"] for r in rows}
        person = links.get(self.user) or self.user
        return sorted({person, *(anon for anon, user in links.items() if user == person)})

    async def run(self, store: ClickHouse) -> list[TrackedEvent]:
        sql, params = self.to_sql(await self.identities(store))
        return [TrackedEvent.from_row(r) for r in await fetch(store, sql, params)]


@dataclass
class TrackedEvent:
    event_id: str
    event: str
    business_line: str
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    timestamp: datetime
    platform: str | None
    app_version: str | None
    properties: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrackedEvent:
        return cls(
            row["event_id"], row["event"], row["business_line"], row["user_id"] or None,
            row["anonymous_id"] or None, row["session_id"] or None,
            utc(datetime.fromtimestamp(row["ts"] / 1000)), row["platform"] or None,
            row["app_version"] or None,
            orjson.loads(row["properties_json"]) if row.get("properties_json")
            else dict(row["properties"]),
        )

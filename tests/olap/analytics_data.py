"""Rows for the analytics tests, shaped as the ingestion sink writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.olap.port import ClickHouse
from cairn.olap.schema import migrate

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(event: str, seconds: float, *, user: str = "", anon: str = "", person: str = "",
        session: str = "", line: str = "shop", platform: str = "ios",
        props: dict[str, str] | None = None) -> dict[str, Any]:
    ts = at(seconds).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return {"event_id": str(uuid.uuid4()), "business_line": line, "event": event,
            "timestamp": ts, "received_at": ts, "user_id": user, "anonymous_id": anon,
            "person_id": person or user or anon, "session_id": session,
            "platform": platform, "app_version": "1.0", "definition_version": "1-0-0",
            "warnings": [], "properties": props or {}, "level": "D"}


async def load(store: ClickHouse, rows: list[dict[str, Any]],
               links: list[tuple[str, str, float]] = ()) -> None:  # type: ignore[assignment]
    await migrate(store)
    await store.insert("events", rows)
    await store.insert("identities", [
        {"anonymous_id": a, "user_id": u, "business_line": "shop",
         "linked_at": at(s).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]} for a, u, s in links])

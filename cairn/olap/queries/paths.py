"""Sankey paths per session, exactly as the contract words them.

Within [from, to) and after filters, a session's events are ordered by timestamp (ties by
event name, so answers are repeatable). The path starts at the session's first startEvent
(sessions without one are left out) or its first event; with endEvent it runs to the first
endEvent strictly after the start, sessions with none being left out, and it keeps at most
``depth`` events either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, Param
from cairn.olap.queries.common import RangeInput, fetch
from cairn.olap.queries.filters import Binder

MAX_DEPTH = 20
MAX_LINKS = 1000


class PathsQuery(RangeInput):
    start_event: str | None = None
    end_event: str | None = None
    depth: int = 5
    max_links: int = 50

    @model_validator(mode="after")
    def _shape(self) -> PathsQuery:
        if not 2 <= self.depth <= MAX_DEPTH:
            raise ValidationFailed(f"depth must be between 2 and {MAX_DEPTH}")
        if not 1 <= self.max_links <= MAX_LINKS:
            raise ValidationFailed(f"maxLinks must be between 1 and {MAX_LINKS}")
        return self

    def to_sql(self) -> tuple[str, dict[str, Param]]:
        b = Binder()
        where = [*self.where(b), "session_id != ''"]
        evs = "arrayMap(x -> x.2, arraySort(groupArray((timestamp, event))))"
        start = "1"
        if self.start_event is not None:
            start = f"indexOf(evs, {b.bind(self.start_event, 'String')})"
        depth = b.bind(self.depth, "UInt32")
        length = depth
        keep = "s > 0"
        if self.end_event is not None:
            end = f"indexOf(arraySlice(evs, s + 1), {b.bind(self.end_event, 'String')})"
            length = f"least({end} + 1, {depth})"
            keep += f" AND {end} > 0"
        sessions = (f"SELECT {start} AS s, arraySlice(evs, s, {length}) AS path FROM ("
                    f"SELECT {evs} AS evs FROM events WHERE {' AND '.join(where)} "
                    f"GROUP BY session_id) WHERE {keep}")
        sql = (f"SELECT i AS step, path[i] AS event, "
               f"if(i < length(path), path[i + 1], NULL) AS next, count() AS sessions "
               f"FROM ({sessions}) ARRAY JOIN arrayEnumerate(path) AS i "
               f"GROUP BY step, event, next")
        return sql, b.params

    async def run(self, store: ClickHouse) -> PathsResult:
        sql, params = self.to_sql()
        node_sessions: dict[str, int] = {}
        links: list[PathLink] = []
        for row in await fetch(store, sql, params):
            node = f"{row['step']}:{row['event']}"
            node_sessions[node] = node_sessions.get(node, 0) + int(row["sessions"])
            if row["next"] is not None:
                links.append(PathLink(node, f"{row['step'] + 1}:{row['next']}",
                                      int(row["sessions"])))
        links.sort(key=lambda link: (-link.value, link.source, link.target))
        links = links[:self.max_links]
        touched = {n for link in links for n in (link.source, link.target)}
        nodes = [PathNode(n, int(n.split(":", 1)[0]), n.split(":", 1)[1], node_sessions[n])
                 for n in touched]
        nodes.sort(key=lambda node: (node.step, -node.sessions, node.event))
        return PathsResult(nodes, links)


@dataclass
class PathNode:
    id: str
    step: int
    event: str
    sessions: int


@dataclass
class PathLink:
    source: str
    target: str
    value: int


@dataclass
class PathsResult:
    nodes: list[PathNode]
    links: list[PathLink]

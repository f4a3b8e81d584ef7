"""``POST /v1/track`` (tracking-event.md): authenticate, parse, validate, publish, answer.

The answer is 202 only once the bus confirmed the request's message (RabbitMQ publisher
confirms; in the embedded default, the sink's ClickHouse insert): ``accepted`` events are
stored valid (warnings kept), ``invalid`` ones in quarantine with their reasons.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cairn.auth import Principal, Role, bearer
from cairn.errors import Forbidden, TooLarge, Unauthenticated
from cairn.ingest.bus import MessageBus
from cairn.ingest.envelope import MAX_BYTES, EventIn, parse_body, prepare
from cairn.ingest.keys import WriteKeys
from cairn.ingest.messages import encode_rows
from cairn.ingest.registry import Registry

# A test session's capture (cairn.autotest.capture.Capture.http): its key's events go there.
SessionCapture = Callable[[Principal, Sequence[EventIn], Sequence[Any]],
                          Awaitable[dict[str, Any]]]
_SESSION = Role.SESSION  # a module constant: an enum member looked up per request costs 0.4 us


@dataclass
class Gateway:
    registry: Registry
    keys: WriteKeys
    bus: MessageBus
    capture: SessionCapture | None = None

    async def track(self, request: web.Request) -> web.Response:
        principal = await self.keys.authenticate(bearer(request.headers.get("Authorization")))
        line = principal.business_line
        if line is None:
            raise Forbidden("this write key has no business line")
        body = await _read_limited(request)
        events, raws = parse_body(body)
        for i, event in enumerate(events):
            claimed = event.get("business_line")
            if claimed is not None and claimed != line:
                where = f"batch[{i}]: " if len(events) > 1 else ""
                raise Forbidden(f"{where}the write key is for business line {line!r}, "
                                f"not {claimed!r}")
        if principal.role is _SESSION:  # test traffic: captured, never on the bus
            if self.capture is None:
                raise Unauthenticated("test sessions are not served here")
            return web.json_response(await self.capture(principal, events, raws), status=202)
        await self.registry.ensure_all(line, (e["event"] for e in events))
        prepared = prepare(events, raws, line, int(time.time() * 1000), self.registry.get)
        await self.bus.publish(encode_rows(line, prepared), routing_key=f"{line}.http",
                               message_id=uuid.uuid4().hex)
        return web.json_response(
            {"accepted": len(prepared.events), "invalid": len(prepared.quarantine)},
            status=202)


async def _read_limited(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise TooLarge(f"body is {request.content_length} bytes; the limit is {MAX_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BYTES:
            raise TooLarge(f"body is over the limit of {MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

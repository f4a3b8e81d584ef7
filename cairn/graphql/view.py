"""The aiohttp view: authenticates every HTTP request and websocket connection.

Every answer is JSON, the refusals of strawberry's own request parsing included (malformed
JSON, an unsupported content type, a batch), and a subscription sent over plain HTTP is run
up to its authorization check, then refused, instead of failing inside graphql-core.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from cairn.auth import bearer
from cairn.bootstrap import Container
from cairn.errors import Unauthenticated
from cairn.graphql.context import Context

# Refusals of the request itself; strawberry says 400 for an unsupported content type.
_STATUS = {"Unsupported content type": 415, "GraphQL only supports GET and POST requests.": 405}
SUBSCRIPTION_HTTP_TIMEOUT = 10.0
DISCONNECT_POLL = 0.25
# A document (64K characters at most) and its variables: refused unread when larger.
MAX_BODY_BYTES = 256 * 1024


def error_response(status: int, message: str, code: str = "VALIDATION") -> web.Response:
    """A refusal before any GraphQL ran: GraphQL's error shape plus Cairn's ``error`` key."""
    return web.json_response(
        {"error": message, "data": None,
         "errors": [{"message": message, "extensions": {"code": code}}]},
        status=status)


def _is_subscription(data: GraphQLRequestData) -> bool:
    if not data.query or "subscription" not in data.query:
        return False
    try:
        document = parse(data.query, max_tokens=10_000)
    except GraphQLError:
        return False  # the ordinary path reports the syntax error
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations
              if data.operation_name is None or (o.name and o.name.value == data.operation_name)]
    return len(chosen) == 1 and chosen[0].operation is OperationType.SUBSCRIPTION


async def _cancel_when_gone(request: web.Request, handler: asyncio.Task[Any] | None,
                            every: float = DISCONNECT_POLL) -> None:
    while handler is not None and not handler.done():
        transport = request.transport
        if request.protocol is None or transport is None or transport.is_closing():
            handler.cancel()
            return
        await asyncio.sleep(every)


class CairnGraphQLView(GraphQLView[Context, None]):
    def __init__(self, container: Container, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container = container

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        # aiohttp goes on running a handler whose client has gone: stop it, so that its
        # analyses leave the queue and their ClickHouse queries are killed.
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return error_response(413, f"the body is {request.content_length} bytes; at most "
                                  f"{MAX_BODY_BYTES}")
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        watcher = asyncio.ensure_future(
            _cancel_when_gone(request, None if websocket else asyncio.current_task()))
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            return error_response(_STATUS.get(exc.reason, exc.status_code), exc.reason)
        finally:
            watcher.cancel()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # its JSONDecodeError is json's: strawberry answers 400

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()  # text: websocket messages go out as text frames

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the body must be a JSON object")
        return parsed

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        over_http = not isinstance(response, web.WebSocketResponse)
        context = Context(self.container, None, over_http=over_http)
        if over_http:
            timeout = self.container.settings.request_timeout
            context.deadline = asyncio.get_running_loop().time() + timeout
        token = bearer(request.headers.get("Authorization"))
        if token or over_http:
            await self._authenticate(context, token)
        return context

    async def _authenticate(self, context: Context, token: str | None) -> None:
        try:
            context.principal = await self.container.tokens.authenticate(token)
        except Unauthenticated as exc:
            context.principal, context.auth_error = None, str(exc)

    async def on_ws_connect(self, context: Context) -> Any:
        params = context.connection_params or {}
        if context.principal is None:
            raw = params.get("Authorization") or params.get("authorization")
            token = bearer(str(raw)) if raw else params.get("token")
            await self._authenticate(context, str(token) if token else None)
        if context.principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        return None

    async def execute_single(
        self, request: web.Request, request_adapter: AsyncHTTPRequestAdapter,
        sub_response: web.Response, context: Context, root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if not _is_subscription(request_data):
            return await super().execute_single(request, request_adapter, sub_response,
                                                context, root_value, request_data)
        # graphql-core would "execute" it as a query without calling the resolver; run the
        # subscription's own checks instead: a refusal, or "use the websocket".
        stream = await self.schema.subscribe(
            request_data.query, variable_values=request_data.variables,
            context_value=context, root_value=root_value,
            operation_name=request_data.operation_name,
            operation_extensions=request_data.extensions)
        with contextlib.suppress(TimeoutError, StopAsyncIteration):
            async with contextlib.aclosing(stream):
                first: ExecutionResult = await asyncio.wait_for(
                    anext(stream), SUBSCRIPTION_HTTP_TIMEOUT)
                return first
        return ExecutionResult(data=None, errors=[GraphQLError(
            "subscriptions are served over a websocket (graphql-transport-ws)",
            extensions={"code": "VALIDATION"})])

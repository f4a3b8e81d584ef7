"""The aiohttp view: authenticates every HTTP request and websocket connection."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError

from cairn.auth import bearer
from cairn.bootstrap import Container
from cairn.errors import Unauthenticated
from cairn.graphql.context import Context


class CairnGraphQLView(GraphQLView[Context, None]):
    def __init__(self, container: Container, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container = container

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        context = Context(self.container, None)
        token = bearer(request.headers.get("Authorization"))
        if token or not isinstance(response, web.WebSocketResponse):
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

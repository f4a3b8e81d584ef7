"""Per-request GraphQL context: the container, the caller, and request-scoped loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as _Info

from cairn.auth import Principal
from cairn.bootstrap import Container
from cairn.errors import Unauthenticated


@dataclass
class Context:
    container: Container
    principal: Principal | None
    auth_error: str | None = None
    # A plain HTTP request (not a websocket): subscriptions refuse to stream over it.
    over_http: bool = True
    # The event loop's clock time by which this request's analyses must be done.
    deadline: float | None = None
    connection_params: dict[str, Any] | None = None
    loaders: dict[str, Any] = field(default_factory=dict)

    def caller(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated(self.auth_error or "missing bearer token")
        return self.principal


Info = _Info[Context, None]

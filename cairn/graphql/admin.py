"""Who am I, and API tokens: admins mint (an extension), list and revoke them.

A line-scoped admin manages the tokens of its own line only: it mints tokens of that line,
lists them, and revokes them; unscoped tokens are an unscoped admin's.
"""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import strawberry

from cairn.auth import Role
from cairn.errors import NotFound, ValidationFailed
from cairn.graphql.context import Info


@strawberry.enum
class ApiRole(enum.Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    AUDITOR = "auditor"
    QA = "qa"


@strawberry.type
class Caller:
    role: str
    business_line: str | None
    name: str


@strawberry.type(description="An API token's metadata; the secret is shown only when minted.")
class ApiToken:
    id: strawberry.ID
    role: str
    business_line: str | None
    label: str | None
    created_at: datetime
    revoked: bool
    created_by: str | None
    revoked_at: datetime | None


@strawberry.type
class AdminQuery:
    @strawberry.field(description="The caller behind the bearer token.")
    def me(self, info: Info) -> Caller:
        who = info.context.caller()
        return Caller(role=who.role.value, business_line=who.business_line, name=who.name)

    @strawberry.field(description="Admin only: the API tokens (a line-scoped admin: its "
                      "line's), oldest first, revoked ones included.")
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        who = info.context.caller()
        who.require_admin(who.business_line)
        rows = await info.context.container.tokens.list("api", who.business_line)
        return [ApiToken(id=strawberry.ID(str(r["id"])), role=r["role"],
                         business_line=r["business_line"], label=r["label"],
                         created_at=r["created_at"], revoked=r["revoked_at"] is not None,
                         created_by=r["created_by"], revoked_at=r["revoked_at"])
                for r in rows]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        description="Admin only. Mints an API token with a role, optionally scoped to one "
        "business line (a line-scoped admin mints tokens of its own line only); the secret "
        "is returned once and stored only hashed."
    )
    async def create_api_token(
        self, info: Info, role: ApiRole, business_line: str | None = None,
        label: str | None = None,
    ) -> str:
        who = info.context.caller()
        line = who.business_line if business_line is None else business_line
        who.require_admin(line)
        if line is not None and not line.strip():
            raise ValidationFailed("businessLine must not be empty")
        return await info.context.container.tokens.create(
            kind="api", role=Role(role.value), business_line=line, label=label,
            created_by=who.name,
        )

    @strawberry.mutation(description="Admin only. Revokes an API token at once, on every "
                         "process, its open subscriptions included; false if it already was.")
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> bool:
        who = info.context.caller()
        who.require_admin(who.business_line)
        try:
            token_id = UUID(str(id))
        except ValueError:
            raise ValidationFailed(f"not an API token id: {id}") from None
        tokens = info.context.container.tokens
        found = await tokens.kind_of(token_id)
        if found is None or found[0] != "api":
            raise NotFound(f"no API token {id}")
        who.require_admin(found[1])
        return await tokens.revoke(token_id)

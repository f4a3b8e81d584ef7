"""Who am I, and API tokens (an extension of the contract: admins mint role tokens)."""

from __future__ import annotations

import enum

import strawberry

from cairn.auth import Role
from cairn.errors import ValidationFailed
from cairn.graphql.context import Info


@strawberry.enum
class ApiRole(enum.Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    AUDITOR = "auditor"


@strawberry.type
class Caller:
    role: str
    business_line: str | None
    name: str


@strawberry.type
class AdminQuery:
    @strawberry.field(description="The caller behind the bearer token.")
    def me(self, info: Info) -> Caller:
        who = info.context.caller()
        return Caller(role=who.role.value, business_line=who.business_line, name=who.name)


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        description="Admin only. Mints an API token with a role, optionally scoped to one "
        "business line; the secret is returned once and stored only hashed."
    )
    async def create_api_token(
        self, info: Info, role: ApiRole, business_line: str | None = None,
        label: str | None = None,
    ) -> str:
        who = info.context.caller()
        who.require_admin()
        if business_line is not None and not business_line.strip():
            raise ValidationFailed("businessLine must not be empty")
        return await info.context.container.tokens.create(
            kind="api", role=Role(role.value), business_line=business_line, label=label,
            created_by=who.name,
        )

"""Health-change webhooks per business line (an extension of the contract; admin only)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from cairn.errors import ValidationFailed
from cairn.graphql.context import Info
from cairn.notifications.webhooks import Webhooks


@strawberry.type
class Webhook:
    id: strawberry.ID
    business_line: str
    url: str
    created_by: str | None
    created_at: datetime


@strawberry.type(description="The signing secret is shown only here: the receiver checks "
                 "X-Cairn-Signature = sha256=HMAC-SHA256(secret, body).")
class CreatedWebhook:
    id: strawberry.ID
    secret: str


def _hooks(info: Info, business_line: str | None) -> Webhooks:
    """The webhooks, for an admin of ``business_line`` (None: every line)."""
    info.context.caller().require_admin(business_line)
    container = info.context.container
    return Webhooks(container.pool, allow_private=container.settings.webhook_allow_private)


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Admin only: the health-change webhooks.")
    async def webhooks(self, info: Info, business_line: str | None = None) -> list[Webhook]:
        who = info.context.caller()
        line = who.business_line if business_line is None else business_line
        rows = await _hooks(info, line).list(line)
        return [Webhook(id=strawberry.ID(str(r["id"])), business_line=r["business_line"],
                        url=r["url"], created_by=r["created_by"], created_at=r["created_at"])
                for r in rows]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Admin only: POST every health change of the line to "
                         "`url` as signed JSON (retried with backoff). The URL must reach a public "
                         "address (not loopback, link-local or private) unless "
                         "CAIRN_WEBHOOK_ALLOW_PRIVATE is set.")
    async def create_webhook(self, info: Info, business_line: str, url: str) -> CreatedWebhook:
        ident, secret = await _hooks(info, business_line).create(
            business_line, url, info.context.caller().name)
        return CreatedWebhook(id=strawberry.ID(ident), secret=secret)

    @strawberry.mutation(description="Admin only.")
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> bool:
        who = info.context.caller()
        hooks = _hooks(info, who.business_line)
        try:
            ident = UUID(str(id))
        except ValueError:
            raise ValidationFailed(f"not a webhook id: {id}") from None
        who.require_admin(await hooks.line_of(ident))
        await hooks.delete(ident)
        return True

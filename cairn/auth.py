"""API tokens and write keys: roles, business-line scope, hashed storage in PostgreSQL."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from cairn.errors import Forbidden, Unauthenticated

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('api', 'write', 'session')),
    role text NOT NULL,
    business_line text,
    label text,
    token_hash bytea NOT NULL UNIQUE,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- Version 2: kind 'session', the write key of one auto-test session (cairn.autotest).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'api_tokens_kind_check'
                   AND pg_get_constraintdef(oid) LIKE '%session%') THEN
        ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_kind_check;
        ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_kind_check
            CHECK (kind IN ('api', 'write', 'session'));
    END IF;
END $$;
"""


# PostgreSQL channel carrying the id of each revoked token, to every Cairn process.
REVOKED_CHANNEL = "cairn_token_revoked"
BOOTSTRAP_LABEL = "bootstrap-admin"


class Role(enum.Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    AUDITOR = "auditor"
    QA = "qa"  # runs test sessions, records test runs
    WRITER = "writer"  # a write key: ingestion only
    SESSION = "session"  # a test session's write key: its events go to that session only


READERS = (Role.ADMIN, Role.AUDITOR, Role.VIEWER, Role.EDITOR, Role.QA)


@dataclass(frozen=True)
class Principal:
    """The caller behind a token. A token minted with a business line is limited to that
    line whatever its role: an admin or auditor of ``shop`` is one of shop only."""

    token_id: UUID
    role: Role
    business_line: str | None
    label: str | None

    @property
    def name(self) -> str:
        """Who acted, as recorded in the audited history (never the secret)."""
        return self.label or f"{self.role.value}:{self.token_id}"

    def covers(self, business_line: str | None) -> bool:
        """An unscoped token covers every line and "all lines" (None); a scoped one only its
        own line."""
        return self.business_line is None or self.business_line == business_line

    def can_read(self, business_line: str | None) -> bool:
        return self.role in READERS and self.covers(business_line)

    def require_read(self, business_line: str | None) -> None:
        if not self.can_read(business_line):
            raise Forbidden(f"{self.role.value} token may not read business line {business_line}")

    def read_scope(self, business_line: str | None) -> str | None:
        """The business line a read covers: a token scoped to one line reads only that line
        (asking for another is FORBIDDEN); others read what they ask for."""
        if self.business_line is not None and business_line is None:
            self.require_read(self.business_line)
            return self.business_line
        self.require_read(business_line)
        return business_line

    def require_edit(self, business_line: str | None) -> None:
        if self.role in (Role.ADMIN, Role.EDITOR) and self.covers(business_line):
            return
        raise Forbidden(f"{self.role.value} token may not change business line {business_line}")

    def require_test_run(self, business_line: str | None) -> None:
        """Recording a test run is QA's word (or an admin's), not a developer's."""
        if self.role in (Role.ADMIN, Role.QA) and self.covers(business_line):
            return
        raise Forbidden(f"{self.role.value} token may not record test runs of business line "
                        f"{business_line}")

    def require_audit(self) -> None:
        if self.role not in READERS:
            raise Forbidden("this token may not read history")

    def require_admin(self, business_line: str | None = None) -> None:
        """Admin of ``business_line``; None means every line (an unscoped admin only)."""
        if self.role is not Role.ADMIN:
            raise Forbidden("admin role required")
        if not self.covers(business_line):
            raise Forbidden(f"this admin token is limited to business line "
                            f"{self.business_line}")


def hash_secret(secret: str) -> bytes:
    # Secrets are 256-bit random strings: a plain digest is enough, no slow KDF needed.
    return hashlib.sha256(secret.encode()).digest()


def new_secret(kind: str) -> str:
    return f"cairn_{kind}_{secrets.token_urlsafe(32)}"


class TokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, kind: str, role: Role, business_line: str | None,
                     label: str | None, created_by: str | None, secret: str | None = None) -> str:
        secret = secret or new_secret("wk" if kind == "write" else "api")
        await self._pool.execute(
            """INSERT INTO api_tokens (id, kind, role, business_line, label, token_hash, created_by)
               VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6)
               ON CONFLICT (token_hash) DO NOTHING""",
            kind, role.value, business_line, label, hash_secret(secret), created_by,
        )
        return secret

    async def authenticate(self, secret: str | None, *, kind: str = "api") -> Principal:
        if not secret:
            raise Unauthenticated("missing bearer token")
        return await self.authenticate_hash(hash_secret(secret), kind=kind)

    async def authenticate_hash(self, token_hash: bytes, *,
                                kind: str | tuple[str, ...] = "api") -> Principal:
        """``kind``: one kind of token, or any of several (write and session keys)."""
        kinds = [kind] if isinstance(kind, str) else list(kind)
        row = await self._pool.fetchrow(
            """SELECT id, role, business_line, label FROM api_tokens
               WHERE token_hash = $1 AND kind = ANY($2::text[]) AND revoked_at IS NULL""",
            token_hash, kinds,
        )
        if row is None:
            raise Unauthenticated("unknown or revoked token")
        return _principal(row)

    async def still_valid(self, token_id: UUID) -> Principal:
        """The token's caller again (a long-lived subscription re-checks it); raises
        Unauthenticated once it has been revoked."""
        row = await self._pool.fetchrow(
            """SELECT id, role, business_line, label FROM api_tokens
               WHERE id = $1 AND revoked_at IS NULL""", token_id)
        if row is None:
            raise Unauthenticated("the token was revoked")
        return _principal(row)

    async def list(self, kind: str, business_line: str | None = None) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            """SELECT id, role, business_line, label, created_by, created_at, revoked_at
               FROM api_tokens WHERE kind = $1 AND ($2::text IS NULL OR business_line = $2)
               ORDER BY created_at, id""", kind, business_line)

    async def kind_of(self, token_id: UUID) -> tuple[str, str | None] | None:
        row = await self._pool.fetchrow(
            "SELECT kind, business_line FROM api_tokens WHERE id = $1", token_id)
        return None if row is None else (row["kind"], row["business_line"])

    async def revoke(self, token_id: UUID) -> bool:
        """Revoke a token (False if it already was) and tell every process at once: API
        requests read the table each time, open subscriptions wake on the notification."""
        revoked = await self._pool.fetch(
            """WITH r AS (UPDATE api_tokens SET revoked_at = now()
                          WHERE id = $1 AND revoked_at IS NULL RETURNING id)
               SELECT pg_notify($2, id::text) FROM r""", token_id, REVOKED_CHANNEL)
        return bool(revoked)

    async def revoke_bootstrap_except(self, keep_hash: bytes) -> int:
        """Revoke every earlier bootstrap admin token but ``keep_hash``'s: a restart with a
        new CAIRN_ADMIN_TOKEN retires the previous one."""
        revoked = await self._pool.fetch(
            """WITH r AS (UPDATE api_tokens SET revoked_at = now()
                          WHERE kind = 'api' AND label = $1 AND created_by = 'bootstrap'
                            AND token_hash <> $2 AND revoked_at IS NULL RETURNING id)
               SELECT pg_notify($3, id::text) FROM r""",
            BOOTSTRAP_LABEL, keep_hash, REVOKED_CHANNEL)
        return len(revoked)

    async def is_revoked(self, token_hash: bytes) -> bool:
        found = await self._pool.fetchval(
            "SELECT revoked_at IS NOT NULL FROM api_tokens WHERE token_hash = $1", token_hash)
        return bool(found)


def _principal(row: asyncpg.Record) -> Principal:
    return Principal(row["id"], Role(row["role"]), row["business_line"], row["label"])


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None

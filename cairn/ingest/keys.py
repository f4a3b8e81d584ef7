"""Write keys on the ingestion hot path: checked against PostgreSQL, cached briefly.

A revoked key stops working within ``ttl`` seconds; unknown keys are never cached, so a
flood of bad keys cannot fill memory (each one costs one indexed lookup).
"""

from __future__ import annotations

import time

from cairn.auth import Principal, TokenStore, hash_secret
from cairn.errors import Unauthenticated


class WriteKeys:
    """``kinds``: the token kinds accepted; test-session keys (``"session"``) only where the
    gateway and the consumer route them to their session (cairn.autotest), never to storage."""

    def __init__(self, tokens: TokenStore, ttl: float = 5.0,
                 kinds: tuple[str, ...] = ("write",)) -> None:
        self._tokens = tokens
        self._ttl = ttl
        self.kinds = kinds
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing write key (Authorization: Bearer <key>)")
        return await self.by_hash(hash_secret(secret))

    async def by_hash(self, token_hash: bytes) -> Principal:
        now = time.monotonic()
        hit = self._cache.get(token_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            principal = await self._tokens.authenticate_hash(token_hash, kind=self.kinds)
        except Unauthenticated:
            raise Unauthenticated("unknown or revoked write key") from None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token_hash] = (now + self._ttl, principal)
        return principal

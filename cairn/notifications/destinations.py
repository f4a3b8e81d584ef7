"""Where Cairn may send an outgoing request on someone's say-so (webhooks): public hosts only.

An admin token must not turn Cairn into a proxy into its own network (SSRF): a URL whose
host is, or resolves to, a loopback, link-local, private, shared, reserved or multicast
address is refused, unless ``CAIRN_WEBHOOK_ALLOW_PRIVATE`` says otherwise. Every address a
name resolves to is checked, at creation and again at each delivery, where the connection
is made only to the addresses checked (no second lookup a rebinding DNS could answer
differently).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from cairn.errors import ValidationFailed


def refused(address: str) -> bool:
    """True for an address no webhook may reach."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationFailed(f"the host {host} does not resolve ({exc})") from None
    return [str(info[4][0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> None:
    """ValidationFailed unless ``url`` is http(s) to a host whose every address is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationFailed("url has a bad port") from None
    if allow_private:
        return
    host = parts.hostname
    literal = _literal(host)
    addresses = [literal] if literal is not None else await resolve(host, port)
    bad = sorted({a for a in addresses if refused(a)})
    if bad or not addresses:
        raise ValidationFailed(
            f"url may not point at a loopback, link-local or private address ({host} is "
            f"{', '.join(bad) or 'unresolvable'}); set CAIRN_WEBHOOK_ALLOW_PRIVATE=true to "
            "allow it")


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name any of whose addresses is not public."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        bad = [r["host"] for r in results if refused(r["host"])]
        if bad:
            raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def connector_options(allow_private: bool) -> dict[str, Any]:
    """Keyword arguments for aiohttp.TCPConnector."""
    return {} if allow_private else {"resolver": PublicResolver()}

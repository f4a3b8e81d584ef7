"""ClickHouse's HTTP interface served from chDB, so aiochclient's real requests reach the real
engine on machines without a ClickHouse server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from cairn.olap.chdb_store import _claim_path, _SessionPool
from cairn.olap.port import OlapError


class ChdbHttpServer:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._pools: dict[str, _SessionPool] = {}
        self._lock = asyncio.Lock()

    async def _pool(self, database: str) -> _SessionPool:
        async with self._lock:
            if database not in self._pools:
                self._pools[database] = await asyncio.to_thread(
                    _SessionPool, _claim_path(self._path), database, 2
                )
            return self._pools[database]

    async def handle(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        body = (await request.read()).decode() if request.can_read_body else ""
        sql = f"{query}\n{body}" if query and body else (query or body)
        if not sql.strip():
            return web.Response(text="Ok.\n")
        params = {k[len("param_"):]: v for k, v in request.query.items() if k.startswith("param_")}
        pool = await self._pool(request.query.get("database", "default"))
        try:
            # chDB honours the statement's own FORMAT clause; "TSV" is only the default.
            run = pool.control if sql.lstrip().upper().startswith("KILL") else pool.run
            out = await asyncio.to_thread(run, sql, params, "TabSeparated")
        except OlapError as exc:
            return web.Response(status=500, text=str(exc))
        return web.Response(body=out)

    def app(self) -> web.Application:
        # ClickHouse takes URLs up to 1 MiB (http_max_uri_size): parameters travel there.
        app = web.Application(client_max_size=64 * 1024 * 1024,
                              handler_args={"max_line_size": 1 << 20,
                                            "max_field_size": 1 << 20})
        app.router.add_route("*", "/", self.handle)
        return app

    async def close(self) -> None:
        for pool in self._pools.values():
            await asyncio.to_thread(pool.close)


async def _serve(path: Path, port: int) -> None:
    server = ChdbHttpServer(path)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await server.close()


if __name__ == "__main__":
    # `python -m tests.support.clickhouse_http PATH PORT`: one engine for several processes.
    import sys

    asyncio.run(_serve(Path(sys.argv[1]), int(sys.argv[2])))

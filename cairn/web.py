"""The HTTP service: liveness, readiness, GraphQL (with GraphiQL), and ingestion."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from cairn.bootstrap import Container, new_request_id
from cairn.errors import CairnError
from cairn.logs import request_id

log = logging.getLogger("cairn.http")
CONTAINER = web.AppKey("container", Container)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id") or new_request_id()
    token = request_id.set(rid[:64])
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid[:64]
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        # Every error answer is JSON, also the framework's own (404, 405, 413, ...).
        return web.json_response({"error": exc.reason}, status=exc.status)
    except CairnError as exc:
        status = exc.http_status
        return web.json_response({"error": str(exc)}, status=exc.http_status)
    except Exception:
        # A bug: logged with its traceback, answered as JSON like every other error.
        log.exception("unexpected error", extra={"path": request.path})
        return web.json_response({"error": "internal error"}, status=500)
    finally:
        if request.path not in ("/healthz", "/readyz"):
            log.info(
                "request",
                extra={"method": request.method, "path": request.path, "status": status,
                       "ms": round((time.perf_counter() - started) * 1000, 2)},
            )
        request_id.reset(token)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    report = await request.app[CONTAINER].readiness()
    down = {name: state for name, state in report.items() if state != "ok"}
    if down:
        return web.json_response({"status": "unavailable", "down": down, "checks": report},
                                 status=503)
    return web.json_response({"status": "ok", "checks": report})


def create_app(container: Container) -> web.Application:
    from cairn.graphql.schema import schema
    from cairn.graphql.view import CairnGraphQLView

    app = web.Application(middlewares=[request_context], client_max_size=2 * 1024 * 1024)
    app[CONTAINER] = container
    view = CairnGraphQLView(container, schema=schema, graphql_ide="graphiql")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/graphql", view)
    if container.ingest is not None:
        app.router.add_post("/v1/track", container.ingest.gateway.track)
    return app

"""One MCP service over streamable HTTP: the ASGI app, its health route and token guard."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ttg_lab.engine.reader import RunReader
from ttg_lab.mcp_services.names import MCP_PATH
from ttg_lab.mcp_services.servers import build_service
from ttg_lab.mcp_services.sessions import SessionRegistry
from ttg_lab.store.database import Store
from ttg_lab.store.schema import User
from ttg_lab.tools.registry import tools_of


class TokenGuard:
    """ASGI middleware: every request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await JSONResponse({"error": "missing or wrong token"}, status_code=401)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def service_app(service: str, store: Store, token: str | None, user: User) -> Any:
    """The Starlette app serving ``service`` at ``/mcp`` plus ``/health``. With a token,
    every request must carry it and run views show ``user``'s runs; without one it
    serves sandboxes only. The health answer names no session."""
    registry = SessionRegistry(RunReader(store, user), run_views=token is not None)
    server = build_service(service, registry.resolve)

    @server.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(
            {"service": service, "status": "ok", "tools": [t.name for t in tools_of(service)]}
        )

    middleware = [Middleware(TokenGuard, token=token)] if token else []
    return server.http_app(path=MCP_PATH, middleware=middleware, transport="http")

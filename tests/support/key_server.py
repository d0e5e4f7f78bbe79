"""Real HTTP on 127.0.0.1 for the callback tests: any ASGI app served by uvicorn (`serving`), and a key server
standing in for a ConnectWise host that answers signing keys (`KeyServer`), counting what it was asked."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def serving(app, port: int | None = None, config: uvicorn.Config | None = None) -> AsyncIterator[str]:
    """`app` on http://127.0.0.1:PORT (yielded) until the block ends; `config` (uvicorn's) names the port."""
    config = config or uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning")
    port = config.port
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class KeyServer:
    """GET /key answers `{"signing_key": key}`; /redirect a 302 to /key; /big an answer of 10 KB; /slow after
    `delay` seconds. `requests` lists the paths asked for."""

    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    origin: str = ""

    def url(self, path: str = "/key", query: str = "companyName=acme&id=k1") -> str:
        return f"{self.origin}{path}?{query}"

    @property
    def host(self) -> str:
        return self.origin.removeprefix("http://")

    def app(self) -> Starlette:
        async def answer(request: Request) -> Response:
            self.requests.append(request.url.path)
            if request.url.path == "/redirect":
                return RedirectResponse(f"{self.origin}/key", status_code=302)
            if request.url.path == "/big":
                return JSONResponse({"signing_key": "k" * 10_000})
            if request.url.path == "/slow":
                await asyncio.sleep(self.delay)
            return JSONResponse({"signing_key": self.key})

        return Starlette(routes=[Route("/{path:path}", answer)])


@asynccontextmanager
async def key_server() -> AsyncIterator[KeyServer]:
    keys = KeyServer()
    async with serving(keys.app()) as origin:
        keys.origin = origin
        yield keys

"""Servers on loopback for the shared-state benchmark and tests: a `redis-server` of our own, an ASGI app (the
sandbox) served by uvicorn in a thread, and the arrival time of each request that app receives."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
START_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def redis_server_binary() -> str | None:
    """The `redis-server` on PATH (Debian's package: `apt-get install redis-server`), if any."""
    return shutil.which("redis-server")


class RedisServer:
    """A `redis-server` on a free loopback port, its files in `directory`, saving nothing; `stop` and `start`
    again (same port, empty) to play an outage."""

    def __init__(self, directory: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def client(self) -> Any:
        """A plain (synchronous) client, to look at what the store holds."""
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)


class TimedApp:
    """An ASGI app that notes when each HTTP request arrives (`time.monotonic`, the same clock in every process
    of the machine) before passing it on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.arrivals.append(time.monotonic())
        await self.app(scope, receive, send)


class ThreadedServer:
    """An ASGI app served by uvicorn on a loopback port, in a thread of this process, until `stop`."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        wait_until(lambda: self._server.started, f"the server on port {self.port}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

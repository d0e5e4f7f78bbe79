"""Servers on loopback for the shared-state benchmark and tests, each a process of its own: a `redis-server` of
ours, and the sandbox, noting when each request arrives."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
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
    """An ASGI app that writes down when each HTTP request arrives (`time.monotonic`: one clock for every process
    of the machine), one line a request in `arrivals`, before passing it on."""

    def __init__(self, app: Any, arrivals: Path) -> None:
        self.app = app
        self._arrivals = arrivals.open("a", buffering=1)  # a line at a time: readable while it runs

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self._arrivals.write(f"{time.monotonic():.6f}\n")
        await self.app(scope, receive, send)


class LoopbackSandbox:
    """The sandbox in a process of its own on a free loopback port (so that its clock is not held up by the
    load of the process that measures), answering after `latency_ms`, noting each request's arrival."""

    def __init__(self, directory: Path, latency_ms: float = 0.0, tickets: int = 200) -> None:
        self.port, self.latency_ms, self.tickets = free_port(), latency_ms, tickets
        self.arrivals_file = directory / f"sandbox-{self.port}-arrivals.txt"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        from mcp_server_connectwise.sandbox.settings import API_ROOT

        return f"http://{LOOPBACK}:{self.port}{API_ROOT}"

    def start(self) -> LoopbackSandbox:
        self.arrivals_file.touch()
        spec = [str(self.port), str(self.latency_ms), str(self.tickets), str(self.arrivals_file)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_server_connectwise.bench.processes", *spec],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._listening, f"the sandbox on port {self.port}")
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {self.process.returncode}")
        try:
            socket.create_connection((LOOPBACK, self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def arrivals(self) -> list[float]:
        """When each request so far arrived (`time.monotonic`)."""
        return [float(line) for line in self.arrivals_file.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _serve_sandbox(port: int, latency_ms: float, tickets: int, arrivals: Path) -> None:
    import uvicorn

    from mcp_server_connectwise.sandbox import SandboxSettings, create_app
    from mcp_server_connectwise.sandbox.settings import API_ROOT

    settings = SandboxSettings(tickets=tickets, latency_ms=latency_ms)
    app = create_app(settings, base_url=f"http://{LOOPBACK}:{port}{API_ROOT}")
    uvicorn.run(TimedApp(app, arrivals), host=LOOPBACK, port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    _serve_sandbox(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))

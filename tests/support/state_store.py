"""A real Redis for the shared-state tests: `redis-server` on a free loopback port, in the test's temporary
directory, saving nothing. Where it is not installed the tests skip - except in CI (`CI=true`), where `.ci/run`
installs it and its absence fails them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server_connectwise.bench.processes import RedisServer, redis_server_binary
from mcp_server_connectwise.config import StateConfig


def need_redis_server() -> None:
    if redis_server_binary() is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def running_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """What the `redis_server` fixture (conftest) yields: a started server, stopped after the test."""
    need_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def state_config(server: RedisServer) -> StateConfig:
    """`[state]` naming `server`."""
    return StateConfig(url=server.url)

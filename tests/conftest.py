"""Shared fixtures. Every test runs with an in-memory keyring: no test may touch the machine's keyring."""

from __future__ import annotations

import os

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest
from hypothesis import settings

from support.state_store import running_redis_server

# CI runs the property tests on a fixed seed, so whether a change lands never depends on a lucky draw;
# local runs explore new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that lives in a dict, for tests only."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.store[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError(username) from None


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    """Install a fresh in-memory keyring as the process-wide backend for the duration of one test."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    # A child process (stdio server tests) must not find the machine's keyring either.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield backend
    # Never fall back to the machine's keyring between tests.
    keyring.set_keyring(keyring.backends.fail.Keyring())


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own on a free loopback port (skipped where it is not installed, outside CI)."""
    yield from running_redis_server(tmp_path)

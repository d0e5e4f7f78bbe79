"""Tenants' API keys in the OS keyring, and nowhere else.

There is no plaintext fallback: without a usable keyring backend every operation raises
`KeyringUnavailable`, which tells the user how to get one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from mcp_server_connectwise.connectwise import ApiCredentials

SERVICE_NAME = "mcp-server-connectwise"

_HOW_TO_FIX = (
    "install and configure a keyring backend (for example `pip install keyrings.alt`), "
    "or set PYTHON_KEYRING_BACKEND to one that works on this machine; "
    "API keys are never stored in plaintext as a fallback"
)

T = TypeVar("T")


class KeyringUnavailable(Exception):
    """No usable OS keyring: the message says how to fix it."""


def _public_username(tenant: str) -> str:
    return f"{tenant}/public_key"


def _private_username(tenant: str) -> str:
    return f"{tenant}/private_key"


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _usable_backend() -> keyring.backend.KeyringBackend:
    # Looked up on every call: tests (and users of `keyring.set_keyring`) swap the backend at run time.
    backend = keyring.get_keyring()
    unusable = isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)) or (
        isinstance(backend, keyring.backends.chainer.ChainerBackend) and not backend.backends
    )
    if unusable:
        raise KeyringUnavailable(f"no usable keyring backend ({_backend_name(backend)}): {_HOW_TO_FIX}")
    return backend


def _access(operation: Callable[[keyring.backend.KeyringBackend], T]) -> T:
    backend = _usable_backend()
    try:
        return operation(backend)
    except keyring.errors.KeyringError as exc:
        # The backend's own words can help (e.g. "keyring is locked"), but stay on one line.
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise KeyringUnavailable(
            f"the keyring backend {_backend_name(backend)} failed ({detail}): {_HOW_TO_FIX}"
        ) from None


class KeyStore:
    """Each tenant's public and private API key, as two entries under the service `mcp-server-connectwise`."""

    def get(self, tenant: str) -> ApiCredentials | None:
        """The tenant's keys, or None unless both are stored."""

        def read(backend: keyring.backend.KeyringBackend) -> ApiCredentials | None:
            public_key = backend.get_password(SERVICE_NAME, _public_username(tenant))
            private_key = backend.get_password(SERVICE_NAME, _private_username(tenant))
            if not public_key or not private_key:
                return None
            return ApiCredentials(public_key=public_key, private_key=private_key)

        return _access(read)

    def set(self, tenant: str, credentials: ApiCredentials) -> None:
        if not credentials.public_key or not credentials.private_key:
            raise ValueError("both the public and the private key must be non-empty")

        def write(backend: keyring.backend.KeyringBackend) -> None:
            backend.set_password(SERVICE_NAME, _public_username(tenant), credentials.public_key)
            backend.set_password(SERVICE_NAME, _private_username(tenant), credentials.private_key)

        _access(write)
        # Some backends (e.g. a chainer whose members all decline) "succeed" without storing anything.
        stored = self.get(tenant)
        if stored is None or (stored.public_key, stored.private_key) != (
            credentials.public_key,
            credentials.private_key,
        ):
            raise KeyringUnavailable(
                f"the keyring backend {_backend_name(keyring.get_keyring())} did not keep the keys: {_HOW_TO_FIX}"
            )

    def remove(self, tenant: str) -> bool:
        """Delete both keys; True if anything was deleted."""

        def delete(backend: keyring.backend.KeyringBackend) -> bool:
            deleted = False
            for username in (_public_username(tenant), _private_username(tenant)):
                try:
                    backend.delete_password(SERVICE_NAME, username)
                    deleted = True
                except keyring.errors.PasswordDeleteError:
                    pass  # not stored: nothing to delete
            return deleted

        return _access(delete)

    def has(self, tenant: str) -> bool:
        return self.get(tenant) is not None

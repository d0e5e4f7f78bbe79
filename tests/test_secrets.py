"""KeyStore: keys round-trip through the keyring; an unusable backend is a clear error, never a fallback."""

from __future__ import annotations

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest

from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.secrets import SERVICE_NAME, KeyringUnavailable, KeyStore

PRIVATE = "priv-9f8e7d6c5b4a"
CREDENTIALS = ApiCredentials(public_key="pub-1a2b3c", private_key=PRIVATE)


def test_round_trip(memory_keyring) -> None:
    store = KeyStore()
    assert store.get("acme") is None
    assert not store.has("acme")

    store.set("acme", CREDENTIALS)

    assert store.get("acme") == CREDENTIALS
    assert store.has("acme")
    assert memory_keyring.store == {
        (SERVICE_NAME, "acme/public_key"): "pub-1a2b3c",
        (SERVICE_NAME, "acme/private_key"): PRIVATE,
    }
    assert not store.has("beta")


def test_set_replaces(memory_keyring) -> None:
    store = KeyStore()
    store.set("acme", CREDENTIALS)
    store.set("acme", ApiCredentials(public_key="pub-2", private_key="priv-2"))
    assert store.get("acme") == ApiCredentials(public_key="pub-2", private_key="priv-2")


def test_remove(memory_keyring) -> None:
    store = KeyStore()
    store.set("acme", CREDENTIALS)
    store.set("beta", CREDENTIALS)
    assert store.remove("acme") is True
    assert store.get("acme") is None
    assert store.remove("acme") is False
    assert store.has("beta")


def test_half_stored_keys_count_as_missing_and_are_removed(memory_keyring) -> None:
    memory_keyring.store[(SERVICE_NAME, "acme/public_key")] = "pub-only"
    store = KeyStore()
    assert store.get("acme") is None
    assert not store.has("acme")
    assert store.remove("acme") is True
    assert memory_keyring.store == {}


def test_empty_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        KeyStore().set("acme", ApiCredentials(public_key="pub", private_key=""))


def test_repr_of_credentials_hides_the_keys() -> None:
    assert PRIVATE not in repr(CREDENTIALS) and "pub-1a2b3c" not in repr(CREDENTIALS)


class _SilentlyDroppingKeyring(keyring.backend.KeyringBackend):
    """Accepts writes and keeps nothing, like a chainer whose members all decline."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        pass

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


class _LockedKeyring(_SilentlyDroppingKeyring):
    def get_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


class _EmptyChainer(keyring.backends.chainer.ChainerBackend):
    backends: list[keyring.backend.KeyringBackend] = []  # type: ignore[assignment]


UNUSABLE = [
    pytest.param(keyring.backends.fail.Keyring, "keyring.backends.fail.Keyring", id="fail"),
    pytest.param(keyring.backends.null.Keyring, "keyring.backends.null.Keyring", id="null"),
    pytest.param(_EmptyChainer, "_EmptyChainer", id="empty-chainer"),
    pytest.param(_LockedKeyring, "the collection is locked", id="locked"),
]


@pytest.mark.parametrize(("backend_type", "named"), UNUSABLE)
def test_unusable_backend_is_a_clear_error(backend_type: type, named: str) -> None:
    keyring.set_keyring(backend_type())
    store = KeyStore()
    for operation in (
        lambda: store.get("acme"),
        lambda: store.has("acme"),
        lambda: store.set("acme", CREDENTIALS),
        lambda: store.remove("acme"),
    ):
        with pytest.raises(KeyringUnavailable) as caught:
            operation()
        message = str(caught.value)
        assert "\n" not in message
        assert named in message
        assert "pip install keyrings.alt" in message and "PYTHON_KEYRING_BACKEND" in message
        assert PRIVATE not in message


def test_backend_that_drops_writes_is_detected() -> None:
    keyring.set_keyring(_SilentlyDroppingKeyring())
    with pytest.raises(KeyringUnavailable) as caught:
        KeyStore().set("acme", CREDENTIALS)
    assert "did not keep the keys" in str(caught.value)
    assert PRIVATE not in str(caught.value)


def test_backend_is_looked_up_at_call_time(memory_keyring) -> None:
    store = KeyStore()
    store.set("acme", CREDENTIALS)
    keyring.set_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(KeyringUnavailable):
        store.get("acme")
    keyring.set_keyring(memory_keyring)
    assert store.get("acme") == CREDENTIALS

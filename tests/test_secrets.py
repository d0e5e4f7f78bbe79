"""KeyStore: keys round-trip through the keyring; an unusable backend is a clear error, never a fallback; a
plaintext keyring is refused unless the config allows it; an encrypted file keyring gets its passphrase from the
service manager."""

from __future__ import annotations

import base64
import types
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import keyrings.alt.file
import pytest

from mcp_server_connectwise import secrets
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.secrets import (
    PASSPHRASE_FILE_ENV,
    SERVICE_NAME,
    KeyringUnavailable,
    KeyStore,
    plaintext_backend,
)

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
        # The advice names an encrypted option, never a plaintext one.
        assert "keyrings.cryptfile" in message and "PYTHON_KEYRING_BACKEND" in message
        assert "keyrings.alt" not in message and "Plaintext" not in message
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


# --- plaintext keyrings -------------------------------------------------------------------------------------


@pytest.fixture
def plaintext_keyring(tmp_path: Path) -> keyrings.alt.file.PlaintextKeyring:
    """keyrings.alt's real PlaintextKeyring (what `pip install keyrings.alt` gives a headless box), in tmp_path."""
    backend = keyrings.alt.file.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    return backend


def test_a_plaintext_keyring_is_refused_in_one_actionable_line(plaintext_keyring, tmp_path) -> None:
    config = tmp_path / "tenants.toml"
    store = KeyStore(config_path=config)
    for operation in (
        lambda: store.get("acme"),
        lambda: store.has("acme"),
        lambda: store.set("acme", CREDENTIALS),
    ):
        with pytest.raises(KeyringUnavailable) as caught:
            operation()
        message = str(caught.value)
        assert "\n" not in message and PRIVATE not in message
        assert message.startswith(
            "the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted on disk, so it is refused: "
        )
        assert "keyrings.cryptfile.cryptfile.CryptFileKeyring" in message and "service manager" in message
        assert message.endswith(f"set `[secrets] allow_plaintext_keyring = true` in {config}")
    assert not Path(plaintext_keyring.file_path).exists()  # nothing was written


def test_a_plaintext_keyring_allowed_by_the_config_works_and_warns_once(plaintext_keyring, tmp_path) -> None:
    warnings: list[str] = []
    store = KeyStore(allow_plaintext=True, config_path=tmp_path / "tenants.toml", warn=warnings.append)
    store.set("acme", CREDENTIALS)
    assert store.get("acme") == CREDENTIALS
    assert store.plaintext_backend() == "keyrings.alt.file.PlaintextKeyring"
    assert warnings == [
        "the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted on disk; allowed by "
        f"`[secrets] allow_plaintext_keyring = true` in {tmp_path / 'tenants.toml'}, which is for test rigs and "
        "throwaway machines only"
    ]
    assert PRIVATE not in warnings[0]
    # What it is warned about: the private key is one base64 step from anyone who can read the file.
    assert base64.b64encode(PRIVATE.encode()).decode() in Path(plaintext_keyring.file_path).read_text()


def test_keys_can_always_be_removed_from_a_plaintext_keyring(plaintext_keyring) -> None:
    KeyStore(allow_plaintext=True, warn=lambda _: None).set("acme", CREDENTIALS)
    warnings: list[str] = []
    assert KeyStore(warn=warnings.append).remove("acme") is True
    assert plaintext_keyring.get_password(SERVICE_NAME, "acme/private_key") is None
    assert warnings == []


def test_the_for_config_store_follows_the_secrets_table(plaintext_keyring, tmp_path) -> None:
    from mcp_server_connectwise.config import AppConfig, SecretsConfig, TenantConfig

    acme = TenantConfig(
        name="acme",
        company_id="acme",
        client_id="0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11",
        site="api-na.myconnectwise.net",
    )
    refused = AppConfig(path=tmp_path / "tenants.toml", tenants={"acme": acme})
    with pytest.raises(KeyringUnavailable, match=f"allow_plaintext_keyring = true` in {tmp_path / 'tenants.toml'}$"):
        KeyStore.for_config(refused).get("acme")
    allowed = refused.model_copy(update={"secrets": SecretsConfig(allow_plaintext_keyring=True)})
    warnings: list[str] = []
    assert KeyStore.for_config(allowed, warn=warnings.append).get("acme") is None
    assert len(warnings) == 1


def test_the_start_up_warning_names_a_plaintext_keyring_allowed_or_not(plaintext_keyring, tmp_path) -> None:
    warnings: list[str] = []
    KeyStore(config_path=tmp_path / "tenants.toml", warn=warnings.append).warn_at_start()
    KeyStore(allow_plaintext=True, warn=warnings.append).warn_at_start()
    assert [message.split(";")[0] for message in warnings] == [
        "the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted on disk, so it is refused: "
        "use the OS keychain (macOS Keychain, Windows Credential Locker, or Secret Service on a Linux desktop) or, on "
        "a headless server, an encrypted file keyring: `pip install keyrings.cryptfile` with "
        "PYTHON_KEYRING_BACKEND=keyrings.cryptfile.cryptfile.CryptFileKeyring and its passphrase from the service "
        "manager (the systemd credential keyring-passphrase, or a file named by $CONNECTWISE_MCP_KEYRING_PASSPHRASE_FILE)",
        "the keyring backend keyrings.alt.file.PlaintextKeyring keeps API keys unencrypted on disk",
    ]
    keyring.set_keyring(keyring.backends.fail.Keyring())
    KeyStore(warn=warnings.append).warn_at_start()  # any other problem is told on the first key read
    assert len(warnings) == 2


class _PlainStore(keyring.backend.KeyringBackend):
    """A stand-in for any plaintext backend: its module gives it away."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a plaintext backend must never be written to")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


def _named(module: str, qualname: str, base: type = _PlainStore) -> type:
    return types.new_class(qualname, (base,), exec_body=lambda ns: ns.update(__module__=module, __qualname__=qualname))


class _ChainOf(keyring.backends.chainer.ChainerBackend):
    members: list[keyring.backend.KeyringBackend] = []

    @property
    def backends(self) -> list[keyring.backend.KeyringBackend]:  # type: ignore[override]
        return self.members


def _chain_of(*members: keyring.backend.KeyringBackend) -> _ChainOf:
    chain = _ChainOf()
    chain.members = list(members)
    return chain


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: keyrings.alt.file.PlaintextKeyring(), "keyrings.alt.file.PlaintextKeyring"),
        (lambda: _named("somevendor.plaintext", "Vault")(), "somevendor.plaintext.Vault"),
        (lambda: _named("somevendor.store", "UnencryptedFileKeyring")(), "somevendor.store.UnencryptedFileKeyring"),
        (lambda: _named("somevendor.store", "Quiet", keyrings.alt.file.PlaintextKeyring)(), "somevendor.store.Quiet"),
        (lambda: _chain_of(_named("a.b", "Fine")(), keyrings.alt.file.PlaintextKeyring()), "keyrings.alt.file.Plain"),
    ],
    ids=["keyrings.alt", "module-name", "class-name", "subclass", "chainer-member"],
)
def test_plaintext_backends_are_known_by_module_or_class_name(make, named) -> None:
    backend = make()
    assert (plaintext_backend(backend) or "").startswith(named)
    keyring.set_keyring(backend)
    with pytest.raises(KeyringUnavailable, match="keeps API keys unencrypted on disk, so it is refused"):
        KeyStore().set("acme", CREDENTIALS)


def test_encrypted_and_os_backends_are_not_taken_for_plaintext(memory_keyring) -> None:
    assert plaintext_backend(memory_keyring) is None
    # Only its class counts (making one needs pycryptodome): keyrings.alt's encrypted sibling is not plaintext.
    assert plaintext_backend(object.__new__(keyrings.alt.file.EncryptedKeyring)) is None
    assert plaintext_backend(_named("keyring.backends.SecretService", "Keyring")()) is None


# --- an encrypted file keyring's passphrase -----------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"


class _CryptFileLike(keyring.backend.KeyringBackend):
    """keyrings.cryptfile's CryptFileKeyring as it meets us: `_keyring_key` is None until the `keyring_key` setter,
    which checks the passphrase, unlocks it; reading it locked would prompt (getpass)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._keyring_key: str | None = None
        self.store: dict[tuple[str, str], str] = {}

    @property
    def keyring_key(self) -> str:
        if self._keyring_key is None:
            raise AssertionError("the keyring would prompt for its passphrase")
        return self._keyring_key

    @keyring_key.setter
    def keyring_key(self, key: str) -> None:
        if key != PASSPHRASE:
            raise ValueError("Incorrect Password")
        self._keyring_key = key

    def get_password(self, service: str, username: str) -> str | None:
        self.keyring_key  # noqa: B018 - as the real one: it needs the passphrase to decrypt
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.keyring_key  # noqa: B018
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def crypt_file(monkeypatch: pytest.MonkeyPatch) -> _CryptFileLike:
    backend = _CryptFileLike()
    keyring.set_keyring(backend)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv(PASSPHRASE_FILE_ENV, raising=False)
    return backend


def test_the_passphrase_comes_from_the_systemd_credential(crypt_file, tmp_path, monkeypatch) -> None:
    (tmp_path / "keyring-passphrase").write_text(PASSPHRASE + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(secrets, "_has_terminal", lambda: False)
    store = KeyStore()
    store.set("acme", CREDENTIALS)
    assert store.get("acme") == CREDENTIALS
    assert crypt_file._keyring_key == PASSPHRASE


def test_the_passphrase_comes_from_a_named_file(crypt_file, tmp_path, monkeypatch) -> None:
    (tmp_path / "passphrase").write_text(PASSPHRASE)
    monkeypatch.setenv(PASSPHRASE_FILE_ENV, str(tmp_path / "passphrase"))
    KeyStore().set("acme", CREDENTIALS)
    assert crypt_file.store[(SERVICE_NAME, "acme/private_key")] == PRIVATE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not the passphrase", "the passphrase in {file} does not unlock the encrypted keyring "),
        ("\n", "the keyring's passphrase file {file} is empty: write the passphrase in it"),
        (None, "$CONNECTWISE_MCP_KEYRING_PASSPHRASE_FILE names {file}, which does not exist"),
    ],
    ids=["wrong", "empty", "missing"],
)
def test_a_bad_passphrase_file_is_one_line_without_the_passphrase(
    crypt_file, tmp_path, monkeypatch, content, expected
) -> None:
    file = tmp_path / "passphrase"
    if content is not None:
        file.write_text(content)
    monkeypatch.setenv(PASSPHRASE_FILE_ENV, str(file))
    with pytest.raises(KeyringUnavailable) as caught:
        KeyStore().get("acme")
    message = str(caught.value)
    assert message.startswith(expected.format(file=file)) and "\n" not in message
    assert "not the passphrase" not in message
    assert crypt_file._keyring_key is None


def test_a_locked_encrypted_keyring_without_a_terminal_is_refused_rather_than_reading_stdin(
    crypt_file, monkeypatch
) -> None:
    monkeypatch.setattr(secrets, "_has_terminal", lambda: False)
    with pytest.raises(KeyringUnavailable) as caught:
        KeyStore().get("acme")
    assert str(caught.value) == (
        f"the encrypted keyring {__name__}._CryptFileLike is locked and there is no terminal to ask for its "
        "passphrase: give it through the service manager (the systemd credential keyring-passphrase, or a file "
        "named by $CONNECTWISE_MCP_KEYRING_PASSPHRASE_FILE)"
    )


def test_on_a_terminal_the_encrypted_keyring_asks_for_itself(crypt_file, monkeypatch) -> None:
    monkeypatch.setattr(secrets, "_has_terminal", lambda: True)
    with pytest.raises(AssertionError, match="would prompt"):  # left to the backend's own getpass prompt
        KeyStore().get("acme")

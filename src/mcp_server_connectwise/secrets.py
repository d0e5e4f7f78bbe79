"""Tenants' API keys in the OS keyring, and nowhere else.

There is no plaintext fallback: without a usable keyring backend every operation raises `KeyringUnavailable`,
which tells the user how to get one. A backend that keeps the keys unencrypted (keyrings.alt's PlaintextKeyring
and the like, known by their module or class name) counts as none, unless the config's
`[secrets] allow_plaintext_keyring` allows it for a test rig or throwaway machine; then each `KeyStore` warns
when it first uses it.

An encrypted file keyring (keyrings.cryptfile's CryptFileKeyring) asks for its passphrase on the terminal. A
service has no terminal, so its service manager hands the passphrase over as a file: the systemd credential
`keyring-passphrase` (`LoadCredential=keyring-passphrase:PATH`), or the file named by
$CONNECTWISE_MCP_KEYRING_PASSPHRASE_FILE. Without either, and without a terminal, such a keyring is refused
rather than left to read the passphrase from stdin (the MCP wire, on stdio).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from mcp_server_connectwise.connectwise import ApiCredentials

if TYPE_CHECKING:
    from mcp_server_connectwise.config import AppConfig

SERVICE_NAME = "mcp-server-connectwise"
PASSPHRASE_CREDENTIAL = "keyring-passphrase"  # the systemd credential's name, in $CREDENTIALS_DIRECTORY
PASSPHRASE_FILE_ENV = "CONNECTWISE_MCP_KEYRING_PASSPHRASE_FILE"  # names a file: the passphrase is never in the env
ALLOW_PLAINTEXT = "[secrets] allow_plaintext_keyring = true"
# A backend whose module or class (or a base class) is named so keeps the keys readable by anyone who can read its file.
PLAINTEXT_MARKS = ("plaintext", "plain_text", "unencrypted", "insecure")

_ENCRYPTED_OPTIONS = (
    "use the OS keychain (macOS Keychain, Windows Credential Locker, or Secret Service on a Linux desktop) or, on "
    "a headless server, an encrypted file keyring: `pip install keyrings.cryptfile` with "
    "PYTHON_KEYRING_BACKEND=keyrings.cryptfile.cryptfile.CryptFileKeyring and its passphrase from the service "
    f"manager (the systemd credential {PASSPHRASE_CREDENTIAL}, or a file named by ${PASSPHRASE_FILE_ENV})"
)
_HOW_TO_FIX = (
    f"{_ENCRYPTED_OPTIONS}, or set PYTHON_KEYRING_BACKEND to another that works on this machine; "
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


def _members(backend: keyring.backend.KeyringBackend) -> Iterator[keyring.backend.KeyringBackend]:
    """The backend itself, or the backends a chainer reads from and writes to."""
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        yield from backend.backends
    else:
        yield backend


def plaintext_backend(backend: keyring.backend.KeyringBackend) -> str | None:
    """The name of the backend (or a chainer's member) that keeps keys unencrypted, or None."""
    for member in _members(backend):
        for cls in type(member).__mro__:
            if any(mark in f"{cls.__module__}.{cls.__qualname__}".lower() for mark in PLAINTEXT_MARKS):
                return _backend_name(member)
    return None


def _unusable(backend: keyring.backend.KeyringBackend) -> bool:
    return isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)) or (
        isinstance(backend, keyring.backends.chainer.ChainerBackend) and not backend.backends
    )


def _service_passphrase() -> tuple[str, Path] | None:
    """The encrypted file keyring's passphrase as the service manager gives it, and where it was read."""
    candidates: list[tuple[Path, bool]] = []
    if named := os.environ.get(PASSPHRASE_FILE_ENV):
        candidates.append((Path(named).expanduser(), True))
    if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
        candidates.append((Path(credentials) / PASSPHRASE_CREDENTIAL, False))
    for path, required in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if required:
                raise KeyringUnavailable(
                    f"${PASSPHRASE_FILE_ENV} names {path}, which does not exist: point it at the file holding the "
                    "keyring's passphrase"
                ) from None
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise KeyringUnavailable(f"cannot read the keyring's passphrase from {path}: {reason}") from None
        passphrase = text.rstrip("\r\n")
        if not passphrase.strip():
            raise KeyringUnavailable(f"the keyring's passphrase file {path} is empty: write the passphrase in it")
        return passphrase, path
    return None


def _has_terminal() -> bool:
    """Whether a passphrase prompt (getpass) would reach a person rather than read stdin."""
    if os.name != "posix":
        return True  # getpass asks the console
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _is_locked_file_keyring(backend: keyring.backend.KeyringBackend) -> bool:
    # keyrings.cryptfile's encrypted keyrings keep their passphrase as `_keyring_key`, None until unlocked, and take
    # it through the `keyring_key` property (whose setter checks it against the file).
    keyring_key = getattr(type(backend), "keyring_key", None)
    return (
        isinstance(keyring_key, property)
        and keyring_key.fset is not None
        and vars(backend).get("_keyring_key", "") is None
    )


def _unlock(backend: keyring.backend.KeyringBackend) -> None:
    """Give a locked encrypted file keyring its passphrase from the service manager, or refuse when nobody could
    type it."""
    for member in _members(backend):
        if not _is_locked_file_keyring(member):
            continue
        given = _service_passphrase()
        if given is None:
            if _has_terminal():
                continue  # the backend asks on the terminal
            raise KeyringUnavailable(
                f"the encrypted keyring {_backend_name(member)} is locked and there is no terminal to ask for its "
                f"passphrase: give it through the service manager (the systemd credential {PASSPHRASE_CREDENTIAL}, "
                f"or a file named by ${PASSPHRASE_FILE_ENV})"
            )
        passphrase, source = given
        try:
            member.keyring_key = passphrase  # type: ignore[attr-defined]
        except ValueError:
            raise KeyringUnavailable(
                f"the passphrase in {source} does not unlock the encrypted keyring {_backend_name(member)}: "
                "put the keyring's own passphrase there"
            ) from None
        except Exception as exc:  # never the backend's words: they could quote what it was given
            raise KeyringUnavailable(
                f"the encrypted keyring {_backend_name(member)} failed to unlock ({type(exc).__name__}): {_HOW_TO_FIX}"
            ) from None


class KeyStore:
    """Each tenant's public and private API key, as two entries under the service `mcp-server-connectwise`.

    `allow_plaintext` lets a plaintext keyring hold them (the config's `[secrets] allow_plaintext_keyring`);
    `warn` then hears, once, that one is in use (default: this module's logger). `config_path` is the file the
    refusal tells the user to change.
    """

    def __init__(
        self,
        *,
        allow_plaintext: bool = False,
        config_path: Path | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._allow_plaintext = allow_plaintext
        self._config_path = config_path
        self._warn = warn or logging.getLogger(__name__).warning
        self._warned = False

    @classmethod
    def for_config(cls, config: AppConfig, *, warn: Callable[[str], None] | None = None) -> KeyStore:
        return cls(allow_plaintext=config.secrets.allow_plaintext_keyring, config_path=config.path, warn=warn)

    def _backend(self, *, removing: bool = False) -> keyring.backend.KeyringBackend:
        backend = self._allowed_backend(removing=removing)
        _unlock(backend)
        return backend

    def _allowed_backend(self, *, removing: bool = False) -> keyring.backend.KeyringBackend:
        # Looked up on every call: tests (and users of `keyring.set_keyring`) swap the backend at run time.
        backend = keyring.get_keyring()
        if _unusable(backend):
            raise KeyringUnavailable(f"no usable keyring backend ({_backend_name(backend)}): {_HOW_TO_FIX}")
        plaintext = plaintext_backend(backend)
        if plaintext is None or removing:  # deleting keys from a plaintext keyring is always welcome
            return backend
        where = self._config_path or "tenants.toml"
        if not self._allow_plaintext:
            raise KeyringUnavailable(
                f"the keyring backend {plaintext} keeps API keys unencrypted on disk, so it is refused: "
                f"{_ENCRYPTED_OPTIONS}; only on a test rig or a throwaway machine, set `{ALLOW_PLAINTEXT}` in {where}"
            )
        if not self._warned:
            self._warned = True
            self._warn(
                f"the keyring backend {plaintext} keeps API keys unencrypted on disk; allowed by "
                f"`{ALLOW_PLAINTEXT}` in {where}, which is for test rigs and throwaway machines only"
            )
        return backend

    def _access(self, operation: Callable[[keyring.backend.KeyringBackend], T], *, removing: bool = False) -> T:
        backend = self._backend(removing=removing)
        try:
            return operation(backend)
        except keyring.errors.KeyringError as exc:
            # The backend's own words can help (e.g. "keyring is locked"), but stay on one line.
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise KeyringUnavailable(
                f"the keyring backend {_backend_name(backend)} failed ({detail}): {_HOW_TO_FIX}"
            ) from None

    def warn_at_start(self) -> None:
        """Say at start-up, through `warn`, that a plaintext keyring is in use (allowed) or will be refused."""
        if plaintext_backend(keyring.get_keyring()) is None:
            return  # any other problem is told when a key is first read
        try:
            self._allowed_backend()  # allowed: warns
        except KeyringUnavailable as exc:
            self._warn(str(exc))  # refused: every key read will be, with these words

    def plaintext_backend(self) -> str | None:
        """The name of the plaintext keyring in use (when allowed), or None."""
        return plaintext_backend(keyring.get_keyring())

    def get(self, tenant: str) -> ApiCredentials | None:
        """The tenant's keys, or None unless both are stored."""

        def read(backend: keyring.backend.KeyringBackend) -> ApiCredentials | None:
            public_key = backend.get_password(SERVICE_NAME, _public_username(tenant))
            private_key = backend.get_password(SERVICE_NAME, _private_username(tenant))
            if not public_key or not private_key:
                return None
            return ApiCredentials(public_key=public_key, private_key=private_key)

        return self._access(read)

    def set(self, tenant: str, credentials: ApiCredentials) -> None:
        if not credentials.public_key or not credentials.private_key:
            raise ValueError("both the public and the private key must be non-empty")

        def write(backend: keyring.backend.KeyringBackend) -> None:
            backend.set_password(SERVICE_NAME, _public_username(tenant), credentials.public_key)
            backend.set_password(SERVICE_NAME, _private_username(tenant), credentials.private_key)

        self._access(write)
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
        """Delete both keys; True if anything was deleted. A plaintext keyring is no obstacle here."""

        def delete(backend: keyring.backend.KeyringBackend) -> bool:
            deleted = False
            for username in (_public_username(tenant), _private_username(tenant)):
                try:
                    backend.delete_password(SERVICE_NAME, username)
                    deleted = True
                except keyring.errors.PasswordDeleteError:
                    pass  # not stored: nothing to delete
            return deleted

        return self._access(delete, removing=True)

    def has(self, tenant: str) -> bool:
        return self.get(tenant) is not None

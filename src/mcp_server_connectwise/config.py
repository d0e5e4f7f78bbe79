"""`tenants.toml`: where it lives, what it may say, and one clear line when it says something wrong.

API keys are deliberately absent: they live in the OS keyring (see `secrets.py`), never in this file or
the environment. HTTP bearer tokens are absent too: `[http.principals.NAME]` holds only a token's SHA-256.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp_server_connectwise.connectwise.hosts import is_loopback_host

APP_NAME = "mcp-server-connectwise"
CONFIG_ENV = "CONNECTWISE_MCP_CONFIG"
CONFIG_FILENAME = "tenants.toml"

MAX_REQUESTS_PER_MINUTE = 5000  # ConnectWise throttles a whole tenant at roughly 1,000/min; 5,000 catches typos
SECRET_KEYS = frozenset({"public_key", "private_key"})
KEYS_BELONG_IN_KEYRING = (
    "API keys are never read from the config: store them in the OS keyring with "
    "`mcp-server-connectwise tenants set-keys {tenant}`"
)

# Tenant names become keyring usernames ("{tenant}/private_key") and tool arguments: keep them plain.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TENANT_NAME_RULE = "a tenant name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
# company_id goes into the Basic auth user ("{company}+{public}") and a URL path: no separators allowed.
COMPANY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
API_VERSION = re.compile(r"\d{4}\.\d{1,2}")
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# Principal names appear in audit lines and TOML table headers: the same plain shape as tenant names.
PRINCIPAL_NAME = TENANT_NAME
PRINCIPAL_NAME_RULE = "a principal name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
TOKEN_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
TOKENS_CREATE_HINT = "`mcp-server-connectwise tokens create NAME --tenants a,b`"
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024
# Tool arguments are small JSON (the longest is a note's text); bigger bodies are abuse, not work.
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
MIN_REQUEST_BODY_BYTES = 1024
ANY_PORT = ":*"  # the SDK's only wildcard in allowed hosts/origins: any port of that host


class ConfigError(Exception):
    """A problem in the configuration, as one line naming the file, the tenant and the key."""


class UsageError(Exception):
    """A problem the user fixes by changing the command line: the CLI prints it as one line.

    Here rather than in `cli`, so that the subcommand modules `cli` imports can raise it without importing `cli`.
    """


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not all(HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(f"{host!r} is not a valid host name")


def _check_port(parts: SplitResult) -> None:
    try:
        parts.port  # urllib validates the port lazily
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None


def _check_no_control_characters(value: str) -> str:
    # These values end up in HTTP headers: a newline would let the config inject a header.
    if not value or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be a non-empty value without spaces or control characters")
    return value


class TenantConfig(BaseModel):
    """One ConnectWise company the server may work for."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    company_id: str
    client_id: str
    site: str | None = None
    base_url: str | None = None
    member: str | None = None
    read_only: bool = False
    api_version: str = "2025.1"
    requests_per_minute: int = 600
    tools: tuple[str, ...] | None = None  # None: every tool; the server checks the names against its tools

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME.fullmatch(value):
            raise ValueError(TENANT_NAME_RULE)
        return value

    @field_validator("company_id")
    @classmethod
    def _company_id(cls, value: str) -> str:
        if not COMPANY_ID.fullmatch(value):
            raise ValueError("must be the ConnectWise login company: letters, digits, '_', '.' or '-'")
        return value

    @field_validator("client_id", "member")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        return None if value is None else _check_no_control_characters(value)

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_no_control_characters(value)  # urlsplit silently drops tabs and newlines: refuse them first
        if "://" in value or "/" in value:
            raise ValueError("must be a host name such as 'api-na.myconnectwise.net', without scheme or path (use base_url for a full URL)")
        parts = urlsplit(f"//{value}")
        if parts.username is not None or not parts.hostname:
            raise ValueError("must be a host name such as 'api-na.myconnectwise.net'")
        _check_port(parts)
        _check_host(parts.hostname)
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_no_control_characters(value)  # urlsplit silently drops tabs and newlines: refuse them first
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be a full URL such as 'https://api-na.myconnectwise.net/v2025_1/apis/3.0'")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials (API keys belong in the keyring)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        _check_port(parts)
        _check_host(parts.hostname)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https (http is only allowed for loopback hosts)")
        return value.rstrip("/")  # one spelling, so that joining "/service/tickets" never doubles the slash

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not API_VERSION.fullmatch(value):
            raise ValueError("must look like '2025.1' (year.release)")
        return value

    @field_validator("requests_per_minute")
    @classmethod
    def _requests_per_minute(cls, value: int) -> int:
        if not 0 < value <= MAX_REQUESTS_PER_MINUTE:
            raise ValueError(f"must be between 1 and {MAX_REQUESTS_PER_MINUTE}")
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError('must be a list of tool names, such as ["search_tickets", "get_ticket_details"]')
        if not value:
            raise ValueError("must name at least one tool (remove the key to allow every tool)")
        for item in value:
            if not TOOL_NAME.fullmatch(item):
                raise ValueError(f"{item[:80]!r} is not a tool name (letters, digits, '_', '.' or '-')")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_location(self) -> TenantConfig:
        if (self.site is None) == (self.base_url is None):
            found = "both" if self.site is not None else "neither"
            raise ValueError(f"set exactly one of 'site' or 'base_url' (found {found})")
        return self


def default_audit_path() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "audit.jsonl"


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(default_factory=default_audit_path)
    # Size at which the live log is rotated (the hash chain continues in the new file).
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, le=1024**3)


def _check_allowed_host(value: str) -> str:
    host = value.removesuffix(ANY_PORT)
    parts = urlsplit(f"//{host}")
    try:
        _check_no_control_characters(value)  # urlsplit silently drops tabs and newlines
        if any(ch in host for ch in "/@*") or parts.username is not None or not parts.hostname:
            raise ValueError
        _check_port(parts)
        _check_host(parts.hostname)
    except ValueError:
        raise ValueError(
            f"{value[:80]!r} is not a Host value: give a host name or IP address ([::1] for IPv6), "
            "optionally with ':PORT' or ':*' for any port; no scheme, path or other wildcard"
        ) from None
    return value.lower()


def _check_allowed_origin(value: str) -> str:
    # A browser sends `scheme://host[:port]` and nothing else; the SDK compares exactly, so anything
    # more (a trailing slash, a path) would silently match no request at all.
    parts = urlsplit(value.removesuffix(ANY_PORT))
    try:
        _check_no_control_characters(value)  # urlsplit silently drops tabs and newlines
        if parts.scheme not in ("http", "https") or not parts.hostname or "*" in value.removesuffix(ANY_PORT):
            raise ValueError
        if parts.path or parts.query or parts.fragment or parts.username is not None:
            raise ValueError
        _check_port(parts)
        _check_host(parts.hostname)
    except ValueError:
        raise ValueError(
            f"{value[:80]!r} is not an Origin: give 'https://HOST' or 'https://HOST:PORT' (':*' for any port), "
            "with no path or trailing slash"
        ) from None
    return value.lower()


class Principal(BaseModel):
    """Someone allowed to call the HTTP/SSE transports: a bearer token's hash and the tenants it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    # Not a secret (the token cannot be recovered from it) but kept out of reprs and logs all the same.
    token_sha256: str = Field(repr=False)
    tenants: tuple[str, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PRINCIPAL_NAME.fullmatch(value):
            raise ValueError(PRINCIPAL_NAME_RULE)
        return value

    @field_validator("token_sha256")
    @classmethod
    def _token_sha256(cls, value: str) -> str:
        # Never quote the value: someone may have pasted the token itself here.
        if not TOKEN_SHA256.fullmatch(value):
            raise ValueError(
                "must be the token's SHA-256 as 64 hexadecimal characters, never the token itself; "
                f"create a token with {TOKENS_CREATE_HINT}"
            )
        return value.lower()

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError('must be a list of tenant names, such as ["acme", "globex"]')
        if not value:
            raise ValueError("must name at least one tenant: a principal without tenants could do nothing")
        return tuple(dict.fromkeys(value))


class HttpConfig(BaseModel):
    """The streamable HTTP and SSE transports: who may call them, and from which Host/Origin."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    principals: dict[str, Principal] = Field(default_factory=dict)

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of strings")
        return tuple(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_check_allowed_host(host) for host in value))

    @field_validator("allowed_origins")
    @classmethod
    def _allowed_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_check_allowed_origin(origin) for origin in value))

    @field_validator("max_request_body_bytes")
    @classmethod
    def _max_request_body_bytes(cls, value: int) -> int:
        if not MIN_REQUEST_BODY_BYTES <= value <= MAX_REQUEST_BODY_BYTES:
            raise ValueError(f"must be between {MIN_REQUEST_BODY_BYTES} and {MAX_REQUEST_BODY_BYTES}")
        return value

    @model_validator(mode="after")
    def _distinct_principals(self) -> HttpConfig:
        owner_of: dict[str, str] = {}
        for key, principal in self.principals.items():
            if key != principal.name:
                raise ValueError(f"principal '{principal.name}' is filed under the key '{key}'")
            # One token must mean one principal, or the audit log could not say who acted.
            if principal.token_sha256 in owner_of:
                raise ValueError(
                    f"principals '{owner_of[principal.token_sha256]}' and '{key}' have the same token_sha256: "
                    f"give each its own token with {TOKENS_CREATE_HINT}"
                )
            owner_of[principal.token_sha256] = key
        return self


class AppConfig(BaseModel):
    path: Path | None = None
    default_tenant: str | None = None
    audit: AuditConfig = Field(default_factory=AuditConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    tenants: dict[str, TenantConfig]

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        if not self.tenants:
            raise ValueError("no tenants configured: add a [tenants.NAME] table (see tenants.example.toml)")
        for key, tenant in self.tenants.items():
            if key != tenant.name:
                raise ValueError(f"tenant '{tenant.name}' is filed under the key '{key}'")
        if self.default_tenant is None and len(self.tenants) == 1:
            self.default_tenant = next(iter(self.tenants))
        elif self.default_tenant is not None and self.default_tenant not in self.tenants:
            raise ValueError(f"default_tenant {self.default_tenant!r} is not a configured tenant; {self._known()}")
        for principal in self.http.principals.values():
            for tenant in principal.tenants:
                if tenant not in self.tenants:
                    raise ValueError(
                        f"principal '{principal.name}': key 'tenants': {tenant[:80]!r} is not a configured tenant; "
                        f"{self._known()}"
                    )
        return self

    def _known(self) -> str:
        return "known tenants: " + ", ".join(sorted(self.tenants))

    def tenant(self, name: str | None) -> TenantConfig:
        """The named tenant, or the default one when `name` is None."""
        if name is None:
            if self.default_tenant is None:
                where = f" in {self.path}" if self.path else ""
                raise ConfigError(f"no tenant named and no default_tenant set{where}; {self._known()}")
            name = self.default_tenant
        try:
            return self.tenants[name]
        except KeyError:
            shown = repr(name[:60]) + ("..." if len(name) > 60 else "")  # a caller may send any length
            raise ConfigError(f"unknown tenant {shown}; {self._known()}") from None


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $CONNECTWISE_MCP_CONFIG, else tenants.toml in the platform's user config dir."""
    if explicit is not None:
        return Path(explicit).expanduser().absolute()
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / CONFIG_FILENAME


def load_config(explicit: str | os.PathLike[str] | None = None) -> AppConfig:
    """Read and validate the config. Every problem becomes a `ConfigError`."""
    path = config_path(explicit)
    raw = _read_toml(path, explicit)
    where = str(path)
    _refuse_unknown(where, raw, {"default_tenant", "audit", "http", "tenants"}, tenant=None)

    default_tenant = raw.get("default_tenant")
    if default_tenant is not None and not isinstance(default_tenant, str):
        raise ConfigError(f"{where}: key 'default_tenant': must be a string")
    audit = _load_audit(where, path, raw.get("audit", {}))
    http = _load_http(where, raw.get("http", {}))

    tenant_tables = raw.get("tenants", {})
    if not isinstance(tenant_tables, dict):
        raise ConfigError(f"{where}: key 'tenants': must be a table of [tenants.NAME] tables")
    tenants = {name: _load_tenant(where, name, table) for name, table in tenant_tables.items()}

    try:
        return AppConfig(path=path, default_tenant=default_tenant, audit=audit, http=http, tenants=tenants)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_first_message(exc)}") from None


def _read_toml(path: Path, explicit: str | os.PathLike[str] | None) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        if explicit is not None:
            source = "given with --config"
        elif os.environ.get(CONFIG_ENV):
            source = f"from ${CONFIG_ENV}"
        else:
            source = f"the default location; use --config or ${CONFIG_ENV} for another"
        raise ConfigError(
            f"no config file at {path} ({source}): copy tenants.example.toml from the project to that path and edit it"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def did_you_mean(name: str, choices: Iterable[str], *, quoted: bool = True) -> str:
    """` (did you mean 'closest'?)` for the choice closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    if not close:
        return ""
    return f" (did you mean '{close[0]}'?)" if quoted else f" (did you mean {close[0]}?)"


def _refuse_unknown(where: str, table: dict[str, Any], allowed: set[str], tenant: str | None) -> None:
    """Refuse keys the schema does not know, with a hint; API keys get their own explanation."""
    prefix = f"{where}: tenant '{tenant}'" if tenant is not None else where
    for key in table:
        if key in SECRET_KEYS:
            raise ConfigError(f"{prefix}: key '{key}': {KEYS_BELONG_IN_KEYRING.format(tenant=tenant or 'NAME')}")
        if key not in allowed:
            raise ConfigError(f"{prefix}: key {key!r}: unknown key{did_you_mean(key, allowed)}")


def _load_audit(where: str, config_file: Path, table: Any) -> AuditConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key 'audit': must be a table ([audit])")
    _refuse_unknown(f"{where}: [audit]", table, {"path", "max_bytes"}, tenant=None)
    settings: dict[str, Any] = {}
    if "path" in table:
        if not isinstance(table["path"], str) or not table["path"]:
            raise ConfigError(f"{where}: [audit]: key 'path': must be a non-empty string")
        # A relative audit path means "next to the config", not "wherever the MCP client started us".
        settings["path"] = config_file.parent / Path(table["path"]).expanduser()
    if "max_bytes" in table:
        max_bytes = table["max_bytes"]
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 64 * 1024 <= max_bytes <= 1024**3:
            raise ConfigError(f"{where}: [audit]: key 'max_bytes': must be a whole number of bytes from 65536 to 1073741824")
        settings["max_bytes"] = max_bytes
    return AuditConfig(**settings)


def _load_http(where: str, table: Any) -> HttpConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key 'http': must be a table ([http])")
    allowed = set(HttpConfig.model_fields)
    _refuse_unknown(f"{where}: [http]", table, allowed, tenant=None)
    principal_tables = table.get("principals", {})
    if not isinstance(principal_tables, dict):
        raise ConfigError(f"{where}: [http]: key 'principals': must be a table of [http.principals.NAME] tables")
    principals = {name: _load_principal(where, name, entry) for name, entry in principal_tables.items()}
    try:
        return HttpConfig(**{**table, "principals": principals})
    except ValidationError as exc:
        raise ConfigError(f"{where}: [http]: {_first_message(exc)}") from None


def _load_principal(where: str, name: str, table: Any) -> Principal:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: principal '{name}': must be a table ([http.principals.{name}])")
    if not PRINCIPAL_NAME.fullmatch(name):
        raise ConfigError(f"{where}: principal {name[:80]!r}: {PRINCIPAL_NAME_RULE}")
    prefix = f"{where}: principal '{name}'"
    if "token" in table:  # never echo it: it is the bearer token itself
        raise ConfigError(
            f"{prefix}: key 'token': the token itself never goes in the config, only its SHA-256 as token_sha256; "
            f"create one with {TOKENS_CREATE_HINT}"
        )
    _refuse_unknown(prefix, table, set(Principal.model_fields) - {"name"}, tenant=None)
    try:
        return Principal(**table, name=name)
    except ValidationError as exc:
        raise ConfigError(f"{prefix}: {_first_message(exc)}") from None


def _load_tenant(where: str, name: str, table: Any) -> TenantConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: tenant '{name}': must be a table ([tenants.{name}])")
    if not TENANT_NAME.fullmatch(name):
        raise ConfigError(f"{where}: tenant {name!r}: {TENANT_NAME_RULE}")
    allowed = set(TenantConfig.model_fields) - {"name"}  # the name is the table's key, never a value
    _refuse_unknown(where, table, allowed, tenant=name)
    try:
        return TenantConfig(**table, name=name)
    except ValidationError as exc:
        raise ConfigError(f"{where}: tenant '{name}': {_first_message(exc)}") from None


_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "missing": "required key is missing",
    "dict_type": "must be a table",
}


def _first_message(exc: ValidationError) -> str:
    """Pydantic's first error, in our words: `key 'x': problem` (no pydantic dump, no input echoed)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] == "value_error":
        problem = str(error["ctx"]["error"])
    else:
        problem = _TYPE_MESSAGES.get(error["type"], error["msg"])
    loc = [part for part in error["loc"] if isinstance(part, str)]
    return f"key '{loc[-1]}': {problem}" if loc else problem

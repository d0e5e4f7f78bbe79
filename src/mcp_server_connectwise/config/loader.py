"""Reading `tenants.toml`: where it lives, and one clear line when it says something wrong.

Every problem becomes a `ConfigError`: one line naming the file, the table or tenant, and the key (never a
pydantic dump). Every command reads the config through `load_config`, and a command that edits it checks the
new text with `check_config_text` before writing, so the same file gets the same verdict everywhere.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import shlex
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
from pydantic import ValidationError

from mcp_server_connectwise.config.models import (
    APP_NAME,
    PRINCIPAL_NAME,
    PRINCIPAL_NAME_RULE,
    STATE_URL_ENV,
    TENANT_NAME,
    TENANT_NAME_RULE,
    TOKENS_CREATE_HINT,
    AppConfig,
    AuditConfig,
    ConfigError,
    EventsConfig,
    HttpConfig,
    Principal,
    SecretsConfig,
    ServerConfig,
    StateConfig,
    TenantConfig,
)

CONFIG_ENV = "CONNECTWISE_MCP_CONFIG"
CONFIG_FILENAME = "tenants.toml"
EXAMPLE_FILENAME = "tenants.example.toml"  # shipped inside this package: `tenants init` writes it out
SECRET_KEYS = frozenset({"public_key", "private_key"})
KEYS_BELONG_IN_KEYRING = (
    "API keys are never read from the config: store them in the OS keyring with "
    "`mcp-server-connectwise tenants set-keys {tenant}`"
)


PlainTable = TypeVar("PlainTable", ServerConfig, SecretsConfig, StateConfig)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $CONNECTWISE_MCP_CONFIG, else tenants.toml in the platform's user config dir."""
    if explicit is not None:
        return Path(explicit).expanduser().absolute()
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / CONFIG_FILENAME


def example_config() -> str:
    """The text of tenants.example.toml, as shipped in the package."""
    return (importlib.resources.files("mcp_server_connectwise.config") / EXAMPLE_FILENAME).read_text(encoding="utf-8")


def load_config(explicit: str | os.PathLike[str] | None = None) -> AppConfig:
    """Read and validate the config. Every problem becomes a `ConfigError`."""
    path = config_path(explicit)
    return _validated(_read_toml(path, explicit), path)


def check_config_text(text: str, path: Path) -> AppConfig:
    """Validate `text` as the config at `path`, exactly as `load_config` would once it is written there."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _validated(raw, path)


def _validated(raw: dict[str, Any], path: Path) -> AppConfig:
    where = str(path)
    _refuse_unknown(
        where, raw, {"default_tenant", "audit", "events", "http", "server", "secrets", "state", "tenants"}, tenant=None
    )

    default_tenant = raw.get("default_tenant")
    if default_tenant is not None and not isinstance(default_tenant, str):
        raise ConfigError(f"{where}: key 'default_tenant': must be a string")
    audit = _load_audit(where, path, raw.get("audit", {}))
    events = _load_events(where, path, raw.get("events", {}))
    http = _load_http(where, raw.get("http", {}))
    server = _load_plain_table(where, "server", raw.get("server", {}), ServerConfig)
    secrets = _load_plain_table(where, "secrets", raw.get("secrets", {}), SecretsConfig)
    state = _state_url_from_env(_load_plain_table(where, "state", raw.get("state", {}), StateConfig))

    tenant_tables = raw.get("tenants", {})
    if not isinstance(tenant_tables, dict):
        raise ConfigError(f"{where}: key 'tenants': must be a table of [tenants.NAME] tables")
    tenants = {name: _load_tenant(where, name, table) for name, table in tenant_tables.items()}

    try:
        return AppConfig(
            path=path,
            default_tenant=default_tenant,
            audit=audit,
            events=events,
            http=http,
            server=server,
            secrets=secrets,
            state=state,
            tenants=tenants,
        )
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
        init = (
            f"{APP_NAME} --config {shlex.quote(str(path))} tenants init"
            if explicit is not None
            else f"{APP_NAME} tenants init"
        )
        raise ConfigError(
            f"no config file at {path} ({source}): create it with `{init}` (a copy of tenants.example.toml) and edit it"
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
            raise ConfigError(
                f"{where}: [audit]: key 'max_bytes': must be a whole number of bytes from 65536 to 1073741824"
            )
        settings["max_bytes"] = max_bytes
    return AuditConfig(**settings)


def _load_events(where: str, config_file: Path, table: Any) -> EventsConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key 'events': must be a table ([events])")
    _refuse_unknown(f"{where}: [events]", table, set(EventsConfig.model_fields), tenant=None)
    settings = dict(table)
    if "path" in table:
        if not isinstance(table["path"], str) or not table["path"]:
            raise ConfigError(f"{where}: [events]: key 'path': must be a non-empty string")
        # Relative to the config, as the audit path is.
        settings["path"] = config_file.parent / Path(table["path"]).expanduser()
    try:
        return EventsConfig(**settings)
    except ValidationError as exc:
        raise ConfigError(f"{where}: [events]: {_first_message(exc)}") from None


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


def _load_plain_table(where: str, key: str, table: Any, model: type[PlainTable]) -> PlainTable:
    """A table whose keys are its model's fields, checked like every other: `[server]`, `[secrets]`."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key '{key}': must be a table ([{key}])")
    _refuse_unknown(f"{where}: [{key}]", table, set(model.model_fields), tenant=None)
    try:
        return model(**table)
    except ValidationError as exc:
        raise ConfigError(f"{where}: [{key}]: {_first_message(exc)}") from None


def _state_url_from_env(state: StateConfig) -> StateConfig:
    """`[state]` with its url replaced by $CONNECTWISE_MCP_STATE_URL when that is set."""
    url = os.environ.get(STATE_URL_ENV)
    if not url:
        return state
    try:
        return StateConfig(url=url, prefix=state.prefix)
    except ValidationError as exc:  # the value is never quoted: it may carry a password
        problem = _first_message(exc).removeprefix("key 'url': ")
        raise ConfigError(f"${STATE_URL_ENV}: {problem}") from None


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
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
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
    # A nested table's key is named by its path (`alerts.min_severity`); "[key]" marks a table key's own check.
    loc = [part for part in error["loc"] if isinstance(part, str) and part != "[key]"]
    return f"key '{'.'.join(loc)}': {problem}" if loc else problem

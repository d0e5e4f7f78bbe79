"""What `tenants.toml` may say, as validated models: tenants, the audit log, the event store, the HTTP transports,
the server, the shared state.

API keys are deliberately absent: they live in the OS keyring (see `secrets.py`), never in this file or
the environment; `[secrets]` only says which keyrings may hold them. HTTP bearer tokens are absent too: `[http.principals.NAME]` holds only a token's SHA-256.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mcp_server_connectwise.config.network import (
    check_allowed_host,
    check_allowed_origin,
    check_base_url,
    check_header_safe,
    check_site,
    check_state_url,
    shown_state_url,
)

APP_NAME = "mcp-server-connectwise"
MAX_REQUESTS_PER_MINUTE = 5000  # ConnectWise throttles a whole tenant at roughly 1,000/min; 5,000 catches typos

# Tenant names become keyring usernames ("{tenant}/private_key") and tool arguments: keep them plain.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TENANT_NAME_RULE = "a tenant name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
# company_id goes into the Basic auth user ("{company}+{public}") and a URL path: no separators allowed.
COMPANY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# client_id is the integration's clientId from the ConnectWise developer portal: a GUID.
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CLIENT_ID_SOURCE = "https://developer.connectwise.com/ClientID"
API_VERSION = re.compile(r"\d{4}\.\d{1,2}")
# Principal names appear in audit lines and TOML table headers: the same plain shape as tenant names.
PRINCIPAL_NAME = TENANT_NAME
PRINCIPAL_NAME_RULE = "a principal name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
TOKEN_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
TOKENS_CREATE_HINT = "`mcp-server-connectwise tokens create NAME --tenants a,b`"
METRICS_TOKEN_HINT = "`mcp-server-connectwise tokens metrics`"
# A ConnectWise member identifier (at most 15 characters in ConnectWise's model); it goes into a URL path.
MEMBER_IDENTIFIER = re.compile(r"[^\s\x00-\x1f\x7f/\\?#%]{1,15}")
MEMBER_IDENTIFIER_RULE = (
    "must be a ConnectWise member identifier: 1 to 15 characters, without spaces or any of / \\ ? # %"
)
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024
# Tool arguments are small JSON (the longest is a note's text); bigger bodies are abuse, not work.
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
MIN_REQUEST_BODY_BYTES = 1024
# The allowed range of each [http] limit. http_guard.py enforces the connection limits, http_sessions.py the
# session limits, log_limits.py the repeated-log-line limit.
HTTP_LIMIT_RANGES: dict[str, tuple[float, float]] = {
    "header_timeout_seconds": (1, 300),
    "body_timeout_seconds": (1, 3600),
    "max_connections": (1, 100_000),
    "max_sessions_per_principal": (1, 10_000),
    "session_idle_timeout_seconds": (1, 86_400),
    "log_repeat_burst": (1, 10_000),
    "log_repeat_interval_seconds": (1, 86_400),
}


class ConfigError(Exception):
    """A problem in the configuration, as one line naming the file, the tenant and the key."""


# Monitoring severities, most severe first: `min_severity` keeps an alert at or above it.
SEVERITIES = ("critical", "high", "medium", "low", "info")
Severity = Literal["critical", "high", "medium", "low", "info"]


class AlertsConfig(BaseModel):
    """`[tenants.X.alerts]`: where report_alert puts a ticket per alert and how it treats repeats and clears.
    The names are checked against the tenant's ConnectWise on the first alert (there is no ConnectWise at
    config time), with an error naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    board: str
    status: str  # the open status this server sets: a ticket in another has been worked by a person
    close_status: str  # a closed status of `board`
    type: str | None = None
    subtype: str | None = None
    item: str | None = None
    priority: dict[Severity, str] = Field(default_factory=dict)  # severity -> priority name; else the default
    min_severity: Severity = "info"
    coalesce_minutes: int = Field(default=15, ge=1, le=1440)
    reopen_hours: int = Field(default=24, ge=0, le=720)  # 0: a recurrence after a close is always a new ticket
    flap_limit: int = Field(default=3, ge=1, le=100)
    # Where the alert's key is kept on the ticket: staff see it, customers do not. [I] Only externalXRef for
    # now; a tag or custom field would need a search ConnectWise's conditions cannot express on arrays.
    key_field: Literal["externalXRef"] = "externalXRef"

    @field_validator("board", "status", "close_status", "type", "subtype", "item")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(value.strip()) <= 50:
            raise ValueError("must be a name as ConnectWise shows it (1 to 50 characters)")
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
    default_board: str | None = None  # the board create_ticket uses when a call names none
    alerts: AlertsConfig | None = None  # without it, report_alert is refused for this tenant
    # The agreement type create_ticket attaches when a company has exactly one active agreement of it.
    default_agreement_type: str | None = None
    read_only: bool = False
    api_version: str = "2025.1"
    requests_per_minute: int = 600
    tools: tuple[str, ...] | None = None  # None: every tool; the server checks the names against its tools
    # Hosts (host or host:port) besides the API host and `site` that may serve the signing key of a callback
    # (an on-premise ConnectWise's web host, say): a key_url anywhere else is never fetched.
    callback_key_hosts: tuple[str, ...] = ()

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

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        check_header_safe(value)
        if not GUID.fullmatch(value):
            raise ValueError(
                "must be your integration's clientId: a GUID, 32 hexadecimal digits grouped 8-4-4-4-12 "
                f"(get one at {CLIENT_ID_SOURCE})"
            )
        if is_placeholder_guid(value):
            raise ValueError(
                "is a placeholder (a GUID of zeros, as in tenants.example.toml): replace it with your "
                f"integration's clientId from {CLIENT_ID_SOURCE}"
            )
        return value

    @field_validator("member")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        return None if value is None else check_header_safe(value)

    @field_validator("default_board")
    @classmethod
    def _default_board(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(value.strip()) <= 50:
            raise ValueError("must be a board name as ConnectWise shows it (1 to 50 characters)")
        return value

    @field_validator("default_agreement_type")
    @classmethod
    def _default_agreement_type(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(value.strip()) <= 50:
            raise ValueError("must be an agreement type name as ConnectWise shows it (1 to 50 characters)")
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        return None if value is None else check_site(value)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @field_validator("callback_key_hosts", mode="before")
    @classmethod
    def _callback_key_hosts(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError('must be a list of host names, such as ["na.myconnectwise.net"]')
        return tuple(dict.fromkeys(check_site(item).lower() for item in value))

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


def is_placeholder_guid(value: str) -> bool:
    """All zeros, apart perhaps from the version and variant digits (the 13th and 17th): a value to fill in, such as
    tenants.example.toml's 00000000-0000-0000-0000-000000000000, not a clientId."""
    digits = value.replace("-", "")
    return set(digits[:12] + digits[13:16] + digits[17:]) == {"0"}


def default_audit_path() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "audit.jsonl"


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(default_factory=default_audit_path)
    # Size at which the live log is rotated (the hash chain continues in the new file).
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, le=1024**3)


EVENTS_FILENAME = "events.sqlite3"


class EventsConfig(BaseModel):
    """`[events]`: where ConnectWise's callbacks are kept as events, and for how long. The path defaults to
    `events.sqlite3` next to the audit log (both in the platform's user data dir unless configured)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Path | None = None
    # Kept at most this long, and at most this many per tenant (the oldest go first). ConnectWise retries a
    # failing callback for up to 3 days: a week covers a repeat of anything still kept.
    retention_days: int = Field(default=7, ge=1, le=365)
    max_events_per_tenant: int = Field(default=100_000, ge=100, le=10_000_000)


Permission = Literal["mcp", "alerts"]
PERMISSIONS: tuple[Permission, ...] = ("mcp", "alerts")


class Principal(BaseModel):
    """Someone allowed to call the HTTP/SSE transports: a bearer token's hash and the tenants it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    # Not a secret (the token cannot be recovered from it) but kept out of reprs and logs all the same.
    token_sha256: str = Field(repr=False)
    tenants: tuple[str, ...]
    # What the token may do: "mcp" (the MCP endpoint: every tool the server offers) and "alerts" (POST /alerts,
    # for a monitor or an RMM: its token can report alerts and nothing else).
    permissions: tuple[Permission, ...] = ("mcp",)
    # The ConnectWise member (identifier) the principal is: its writes are sent with that member's impersonation
    # keys in each of its tenants, and its time defaults to it. None: the tenant's API member writes.
    member: str | None = None

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

    @field_validator("member")
    @classmethod
    def _member(cls, value: str | None) -> str | None:
        if value is not None and not MEMBER_IDENTIFIER.fullmatch(value):
            raise ValueError(MEMBER_IDENTIFIER_RULE)
        return value

    @field_validator("permissions", mode="before")
    @classmethod
    def _permissions(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value or not all(item in PERMISSIONS for item in value):
            raise ValueError(f'must be a non-empty list of {" and ".join(map(repr, PERMISSIONS))}, such as ["alerts"]')
        return tuple(dict.fromkeys(value))

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError('must be a list of tenant names, such as ["acme", "globex"]')
        if not value:
            raise ValueError("must name at least one tenant: a principal without tenants could do nothing")
        return tuple(dict.fromkeys(value))


class SecretsConfig(BaseModel):
    """Which keyrings may hold the API keys. A plaintext keyring (keyrings.alt's PlaintextKeyring and the like) is
    refused unless `allow_plaintext_keyring`: for test rigs and throwaway machines only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    allow_plaintext_keyring: bool = False


# Overrides `[state] url` when set (a deploy's environment file, rather than the TOML that every replica shares).
STATE_URL_ENV = "CONNECTWISE_MCP_STATE_URL"
STATE_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class StateConfig(BaseModel):
    """`[state]`: where the rate budgets, alert locks and caches several server processes share are kept. No
    `url`: in this process (one server, today's behaviour); a Redis URL: in that Redis, under `prefix`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    url: str | None = Field(default=None, repr=False)  # may carry a password: never shown (see `shown_url`)
    prefix: str = "mcp-server-connectwise"  # several deployments can share one Redis under different prefixes

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_state_url(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not STATE_PREFIX.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return value

    @property
    def shown_url(self) -> str | None:
        return None if self.url is None else shown_state_url(self.url)


class HttpConfig(BaseModel):
    """The streamable HTTP and SSE transports: who may call them, from which Host/Origin, and what they may hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    principals: dict[str, Principal] = Field(default_factory=dict)
    # Slow or stuck clients are cut off: the request head must arrive within header_timeout_seconds (of the
    # connection, or of the previous response), the whole body within body_timeout_seconds of the head.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # Open connections beyond this are answered 503 at once (lowered to fit the process's file limit).
    max_connections: int = 200
    # Open MCP sessions (streamable HTTP Mcp-Session-Id sessions, SSE streams) per principal; more get 429.
    max_sessions_per_principal: int = 10
    # A session no client message has reached for this long is ended (an open stream alone does not keep it).
    session_idle_timeout_seconds: float = 600.0
    # Of log lines alike (same logger, level and message; warnings and errors), the first log_repeat_burst
    # per log_repeat_interval_seconds are written, then one line saying how many more were not.
    log_repeat_burst: int = 5
    log_repeat_interval_seconds: float = 60.0
    # GET /metrics answers only this token (its SHA-256, written by `tokens metrics`); None: /metrics is off.
    metrics_token_sha256: str | None = Field(default=None, repr=False)

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of strings")
        return tuple(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(check_allowed_host(host) for host in value))

    @field_validator("allowed_origins")
    @classmethod
    def _allowed_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(check_allowed_origin(origin) for origin in value))

    @field_validator("metrics_token_sha256")
    @classmethod
    def _metrics_token_sha256(cls, value: str | None) -> str | None:
        if value is not None and not TOKEN_SHA256.fullmatch(value):  # never quoted: it may be the token itself
            raise ValueError(
                "must be the metrics token's SHA-256 as 64 hexadecimal characters, never the token itself; "
                f"create one with {METRICS_TOKEN_HINT}"
            )
        return None if value is None else value.lower()

    @field_validator("max_request_body_bytes")
    @classmethod
    def _max_request_body_bytes(cls, value: int) -> int:
        if not MIN_REQUEST_BODY_BYTES <= value <= MAX_REQUEST_BODY_BYTES:
            raise ValueError(f"must be between {MIN_REQUEST_BODY_BYTES} and {MAX_REQUEST_BODY_BYTES}")
        return value

    @field_validator(*HTTP_LIMIT_RANGES)
    @classmethod
    def _limit(cls, value: float, info: ValidationInfo) -> float:
        low, high = HTTP_LIMIT_RANGES[str(info.field_name)]
        if not low <= value <= high:  # also refuses nan and inf
            unit = " seconds" if str(info.field_name).endswith("_seconds") else ""
            raise ValueError(f"must be between {low:g} and {high:g}{unit}")
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
        if self.metrics_token_sha256 in owner_of:
            raise ValueError(
                f"metrics_token_sha256 is the token_sha256 of principal '{owner_of[self.metrics_token_sha256]}': give "
                f"/metrics its own token with {METRICS_TOKEN_HINT}"
            )
        return self


DEFAULT_CALL_DEADLINE_SECONDS = 30.0
MIN_CALL_DEADLINE_SECONDS = 5.0  # a write's recovery needs a few seconds to look for what it sent
MAX_CALL_DEADLINE_SECONDS = 300.0


class ServerConfig(BaseModel):
    """What the server does whatever the tenant: `toolsets` are the tool groups it serves (None: all of them);
    `call_deadline_seconds` is how long a tool call may take before it answers, whatever ConnectWise does."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    toolsets: tuple[str, ...] | None = None  # the server checks the names against its toolsets
    # Under the 60 s after which common MCP clients give up (and an agent that gives up retries).
    call_deadline_seconds: float = DEFAULT_CALL_DEADLINE_SECONDS

    @field_validator("call_deadline_seconds")
    @classmethod
    def _call_deadline(cls, value: float) -> float:
        if not MIN_CALL_DEADLINE_SECONDS <= value <= MAX_CALL_DEADLINE_SECONDS:
            raise ValueError(f"must be between {MIN_CALL_DEADLINE_SECONDS:g} and {MAX_CALL_DEADLINE_SECONDS:g} seconds")
        return value

    @field_validator("toolsets", mode="before")
    @classmethod
    def _toolsets(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError('must be a list of toolset names, such as ["tickets", "time"]')
        if not value:
            raise ValueError("must name at least one toolset (remove the key to serve every toolset)")
        return tuple(dict.fromkeys(value))


class AppConfig(BaseModel):
    path: Path | None = None
    default_tenant: str | None = None
    audit: AuditConfig = Field(default_factory=AuditConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    state: StateConfig = Field(default_factory=StateConfig)
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
            for tenant_name in principal.tenants:
                if tenant_name not in self.tenants:
                    raise ValueError(
                        f"principal '{principal.name}': key 'tenants': {tenant_name[:80]!r} is not a configured tenant; "
                        f"{self._known()}"
                    )
        return self

    def _known(self) -> str:
        return "known tenants: " + ", ".join(sorted(self.tenants))

    @property
    def events_path(self) -> Path:
        """The event store's file: `[events] path`, else next to the audit log."""
        return self.events.path or self.audit.path.with_name(EVENTS_FILENAME)

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

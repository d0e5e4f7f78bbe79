"""`tenants.toml`: its models (`models`), how it is read (`loader`) and its rules for hosts and URLs (`network`)."""

from mcp_server_connectwise.config.loader import (
    CONFIG_ENV,
    check_config_text,
    config_path,
    did_you_mean,
    example_config,
    load_config,
)
from mcp_server_connectwise.config.models import (
    METRICS_TOKEN_HINT,
    PRINCIPAL_NAME,
    PRINCIPAL_NAME_RULE,
    TOKENS_CREATE_HINT,
    AlertsConfig,
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
from mcp_server_connectwise.config.network import ANY_PORT

__all__ = [
    "AlertsConfig",
    "ANY_PORT",
    "CONFIG_ENV",
    "METRICS_TOKEN_HINT",
    "PRINCIPAL_NAME",
    "PRINCIPAL_NAME_RULE",
    "TOKENS_CREATE_HINT",
    "AppConfig",
    "AuditConfig",
    "ConfigError",
    "EventsConfig",
    "HttpConfig",
    "Principal",
    "SecretsConfig",
    "ServerConfig",
    "StateConfig",
    "TenantConfig",
    "check_config_text",
    "config_path",
    "did_you_mean",
    "example_config",
    "load_config",
]

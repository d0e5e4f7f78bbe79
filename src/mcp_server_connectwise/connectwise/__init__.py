"""Everything that speaks to ConnectWise's REST API. Knows nothing of MCP."""

from .client import ApiCredentials, ClientSettings, ConnectWiseClient, Page, RequestRecord
from .errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConflictError,
    ConnectWiseError,
    DiscoveryError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)
from .retry import RetryPolicy

__all__ = [
    "AmbiguousWriteError",
    "ApiCredentials",
    "AuthenticationError",
    "ClientSettings",
    "ConflictError",
    "ConnectWiseClient",
    "ConnectWiseError",
    "DiscoveryError",
    "FieldError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestRecord",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "ValidationError",
]

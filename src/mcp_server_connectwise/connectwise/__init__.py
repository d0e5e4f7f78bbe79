"""Everything that speaks to ConnectWise's REST API. Knows nothing of MCP."""

from . import endpoints
from .client import ApiCredentials, ClientSettings, ConnectWiseClient, Page, RequestRecord
from .errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConflictError,
    ConnectWiseError,
    DeadlineError,
    DiscoveryError,
    FieldError,
    ImpersonationError,
    NotFoundError,
    NotJsonError,
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
    "DeadlineError",
    "DiscoveryError",
    "FieldError",
    "ImpersonationError",
    "NotFoundError",
    "NotJsonError",
    "Page",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestRecord",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "ValidationError",
    "endpoints",
]

"""Who may call the HTTP and SSE transports, for which tenants, and from which Host/Origin.

There is no unauthenticated network mode: every HTTP/SSE request carries a bearer token that this server
minted (`tokens create`), and the config holds only its SHA-256. A token is good for this server alone,
so there is no audience to check beyond "its hash is in our config".

The server wires these pieces into the SDK:

    verifier = PrincipalTokenVerifier(config.http, config_path=config.path)
    mcp = MCPServer(..., token_verifier=verifier,
                    auth=auth_settings(host, port, "/mcp", allowed_origins=config.http.allowed_origins))
    app = mcp.streamable_http_app(
        host=host,
        transport_security=transport_security(host, config.http, config_path=config.path),
        max_request_body_size=config.http.max_request_body_bytes,
    )

and, in a tool, before any ConnectWise request:

    access = get_access_token()          # None over stdio: the launching user may use every tenant
    if access is not None:
        check_tenant_allowed(access.client_id, principal_tenants(access), tenant)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from hmac import compare_digest
from pathlib import Path
from typing import Any

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from mcp_server_connectwise.config import ANY_PORT, TOKENS_CREATE_HINT, ConfigError, HttpConfig
from mcp_server_connectwise.connectwise.hosts import is_loopback_host

TOKEN_PREFIX = "cwmcp_"  # makes a leaked token recognisable to secret scanners
TOKEN_SCOPE = "connectwise"  # a token with the "mcp" permission carries it; the SDK refuses one without it (403)
ALERTS_SCOPE = "alerts"  # a token with the "alerts" permission carries it: POST /alerts takes it
TENANTS_CLAIM = "tenants"
MEMBER_CLAIM = "member"  # the principal's ConnectWise member, when it has one

# The SDK's own loopback defaults (what it enables when given no settings on a loopback host).
LOOPBACK_ALLOWED_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ALLOWED_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


class TenantNotAllowed(Exception):
    """A principal named a tenant outside its list: the server turns this into a ToolError."""


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored in the config."""
    # surrogatepass: a malformed header must simply not match, never raise.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh bearer token: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class PrincipalTokenVerifier(TokenVerifier):
    """Maps a bearer token to the configured principal whose `token_sha256` it hashes to."""

    def __init__(self, http: HttpConfig, *, config_path: Path | None = None) -> None:
        if not http.principals:
            where = f"{config_path}: " if config_path else ""
            raise ConfigError(
                f"{where}HTTP and SSE always require a bearer token, and no [http.principals] are configured: "
                f"create one with {TOKENS_CREATE_HINT}"
            )
        self._principals = tuple(
            (principal.token_sha256.encode("ascii"), principal) for principal in http.principals.values()
        )

    def __repr__(self) -> str:
        return f"PrincipalTokenVerifier(principals={[principal.name for _, principal in self._principals]})"

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = hash_token(token).encode("ascii")
        matched = None
        # Compare with every principal, without stopping at a match, so the time taken says nothing
        # about which principal (or how many) a guess came close to.
        for digest, principal in self._principals:
            if compare_digest(presented, digest):
                matched = principal
        if matched is None:
            return None
        claims: dict[str, Any] = {TENANTS_CLAIM: sorted(matched.tenants)}
        if matched.member is not None:
            claims[MEMBER_CLAIM] = matched.member
        return AccessToken(
            # The SDK requires the field but never reads it; keep the hash, so the raw token is gone
            # as soon as this call returns and cannot reach a repr or log through the request state.
            token=presented.decode("ascii"),
            client_id=matched.name,
            scopes=_scopes(matched.permissions),
            claims=claims,
        )


def _scopes(permissions: Sequence[str]) -> list[str]:
    return [
        scope for permission, scope in (("mcp", TOKEN_SCOPE), ("alerts", ALERTS_SCOPE)) if permission in permissions
    ]


def principal_tenants(access_token: AccessToken) -> frozenset[str]:
    """The tenants the token's principal may use; none for a token this module did not issue."""
    tenants = (access_token.claims or {}).get(TENANTS_CLAIM)
    if not isinstance(tenants, list):
        return frozenset()
    return frozenset(tenant for tenant in tenants if isinstance(tenant, str))


def principal_member(access_token: AccessToken) -> str | None:
    """The ConnectWise member the token's principal writes as, if it has one."""
    member = (access_token.claims or {}).get(MEMBER_CLAIM)
    return member if isinstance(member, str) else None


def check_tenant_allowed(principal: str | None, allowed: frozenset[str] | None, tenant: str) -> None:
    """Refuse a tenant outside `allowed`; `allowed=None` means unrestricted (stdio: the launching user)."""
    if allowed is None or tenant in allowed:
        return
    who = f"principal '{principal}'" if principal is not None else "this caller"
    listed = ", ".join(sorted(allowed)) if allowed else "none"
    # The tenant comes from a tool argument: quote it with repr, so no control character reaches a log.
    raise TenantNotAllowed(f"{who} may not use tenant {tenant[:80]!r}; allowed: {listed}")


def _url_host(host: str) -> str:
    bare = host.removeprefix("[").removesuffix("]")
    return f"[{bare}]" if ":" in bare else bare


def transport_security(host: str, http: HttpConfig, *, config_path: Path | None = None) -> TransportSecuritySettings:
    """Host/Origin checks for binding `host`: always on (a foreign Origin gets 403, a foreign Host 421).

    The SDK turns the checks off for any non-loopback bind given no settings; here a non-loopback bind
    needs the names clients use, from [http] allowed_hosts and allowed_origins, or it is refused.
    """
    if is_loopback_host(host):
        bound = _url_host(host)
        hosts = (*LOOPBACK_ALLOWED_HOSTS, f"{bound}:*", *http.allowed_hosts)
        origins = (*LOOPBACK_ALLOWED_ORIGINS, f"http://{bound}:*", *http.allowed_origins)
    else:
        missing = [key for key in ("allowed_hosts", "allowed_origins") if not getattr(http, key)]
        if missing:
            where = f"{config_path}: " if config_path else ""
            raise ConfigError(
                f"{where}[http]: binding {host} exposes the server beyond this machine, so [http] must list "
                f"the names clients use ({' and '.join(missing)} missing), e.g. "
                'allowed_hosts = ["mcp.example.com", "mcp.example.com:*"] and '
                'allowed_origins = ["https://mcp.example.com"]; or bind 127.0.0.1'
            )
        hosts, origins = http.allowed_hosts, http.allowed_origins
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def auth_settings(host: str, port: int, path: str = "/mcp", *, allowed_origins: Sequence[str] = ()) -> AuthSettings:
    """Bearer auth as the SDK wants it described, for tokens this server issues itself.

    The URLs name this server as clients reach it. On loopback that is the bound address; a non-loopback bind
    (`0.0.0.0`, `::`, an interface address) is reached through the name in the first of `allowed_origins`
    ([http] allowed_origins, which such a bind requires), since an unspecified address is no place to connect to.
    """
    if allowed_origins and not is_loopback_host(host):
        base = allowed_origins[0].removesuffix(ANY_PORT)  # "any port" of an origin: its scheme's default
    else:
        base = f"http://{_url_host(host)}:{port}"
    return AuthSettings(
        # Required by the SDK even for static tokens; advertised in the protected-resource metadata.
        # The tokens' issuer is this server (`tokens create`), so it names itself.
        issuer_url=base,
        resource_server_url=f"{base}{path}",
        required_scopes=[TOKEN_SCOPE],
        # The verifier only knows tokens minted for this server, so the audience check is inherent;
        # explicit False also silences the SDK's deprecation warning.
        validate_token_resource=False,
    )

"""What the config may say about the network: ConnectWise hosts and URLs, HTTP header values, allowed Hosts and
Origins. Each check returns the value in its one spelling, or raises ValueError with the sentence to show."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from mcp_server_connectwise.connectwise.hosts import is_loopback_host

HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
ANY_PORT = ":*"  # the SDK's only wildcard in allowed hosts/origins: any port of that host


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
        parts.port  # noqa: B018 - urllib validates the port only when it is read
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None


def check_header_safe(value: str) -> str:
    # These values end up in HTTP headers: a newline would let the config inject a header.
    if not value or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be a non-empty value without spaces or control characters")
    return value


def check_site(value: str) -> str:
    check_header_safe(value)  # urlsplit silently drops tabs and newlines: refuse them first
    if "://" in value or "/" in value:
        raise ValueError(
            "must be a host name such as 'api-na.myconnectwise.net', without scheme or path (use base_url for a full URL)"
        )
    parts = urlsplit(f"//{value}")
    if parts.username is not None or not parts.hostname:
        raise ValueError("must be a host name such as 'api-na.myconnectwise.net'")
    _check_port(parts)
    _check_host(parts.hostname)
    return value


def check_base_url(value: str) -> str:
    check_header_safe(value)  # urlsplit silently drops tabs and newlines: refuse them first
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


def check_allowed_host(value: str) -> str:
    host = value.removesuffix(ANY_PORT)
    parts = urlsplit(f"//{host}")
    try:
        check_header_safe(value)  # urlsplit silently drops tabs and newlines
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


def check_allowed_origin(value: str) -> str:
    # A browser sends `scheme://host[:port]` and nothing else; the SDK compares exactly, so anything
    # more (a trailing slash, a path) would silently match no request at all.
    parts = urlsplit(value.removesuffix(ANY_PORT))
    try:
        check_header_safe(value)  # urlsplit silently drops tabs and newlines
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


STATE_URL_SCHEMES = ("redis", "rediss")


def check_state_url(value: str) -> str:
    """A Redis URL: `redis://` or `rediss://` (TLS), a host, optionally a port, a database number and a password.
    The sentence never quotes the value: it may carry the password."""
    parts = urlsplit(value)
    try:
        check_header_safe(value)  # urlsplit silently drops tabs and newlines
        if parts.scheme not in STATE_URL_SCHEMES or not parts.hostname or parts.fragment:
            raise ValueError
        _check_port(parts)
        _check_host(parts.hostname)
        if parts.path not in ("", "/") and not parts.path[1:].isdigit():
            raise ValueError
    except ValueError:
        raise ValueError(
            "must be a Redis URL such as 'redis://redis.internal:6379/0' or 'rediss://:PASSWORD@redis.internal:6380' "
            "(rediss: TLS), with a host, optionally a port and a database number"
        ) from None
    return value


def shown_state_url(value: str) -> str:
    """The URL as logs and errors show it: scheme, host, port and database, never a user name or password."""
    parts = urlsplit(value)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.path not in ('', '/') else ''}"

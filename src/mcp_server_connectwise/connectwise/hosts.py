"""Which hosts are this machine: the one answer the client, the config and the HTTP transports share."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, any 127.0.0.0/8 address and ::1 (bare or in brackets); `host` carries no port.

    `0.0.0.0` and `::` are every interface, and a host name other than `localhost` may resolve anywhere.
    """
    bare = host.removeprefix("[").removesuffix("]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False

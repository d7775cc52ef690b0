"""Which network addresses Baton calls out to: public ones only (webhooks, the http_get
tool), unless a setting allows private networks."""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(address: Address) -> str | None:
    """Why Baton will not call this address, or None for a public one."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return refusal(mapped)
    for reason in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{reason}"):
            return reason.replace("_", "-")
    return None if address.is_global else "not globally routable"


def lookup(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to, once each, in the resolver's order; LookupError
    (saying why) when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise LookupError(f"{host} does not resolve ({exc}).") from None
    found = (ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)
    return list(dict.fromkeys(found))

"""Which network addresses Baton calls out to (agents.outbound): public ones only, unless a
setting allows private networks.

An IPv6 address can carry an IPv4 one that a router or relay unwraps and reaches: IPv4-mapped
and -compatible (::ffff:a.b.c.d, ::a.b.c.d), 6to4 (2002:aabb:ccdd::), Teredo (2001:0::/32,
its server and its obfuscated client) and NAT64 (64:ff9b::/96). Such an address is judged by
the IPv4 addresses it carries too: 2002:7f00:1:: is 127.0.0.1 to a 6to4 relay."""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# The most telling first: 169.254.169.254 is private too, but link-local says more.
REASONS = (
    "loopback",
    "unspecified",
    "link_local",
    "site_local",
    "multicast",
    "private",
    "reserved",
)


def embedded(address: Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form."""
    if address.version == 4:
        return []
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.ipv4_mapped is not None:
        found.append(("IPv4-mapped", address.ipv4_mapped))
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo", server), ("Teredo", client)]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64:
        found.append(("NAT64", low32))
    elif address in IPV4_COMPATIBLE and int(address) > 1:  # not :: nor ::1
        found.append(("IPv4-compatible", low32))
    return found


def refusal(address: Address) -> str | None:
    """Why Baton will not call this address ("loopback", "6to4 form of a loopback"…), or
    None for a public one."""
    for form, inner in embedded(address):
        if reason := refusal(inner):
            return f"{form} form of a {reason}"
    if address.version == 6 and address in NAT64:
        return None  # its IPv4 address is public: a NAT64 gateway reaches it
    for reason in REASONS:
        if getattr(address, f"is_{reason}", False):
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

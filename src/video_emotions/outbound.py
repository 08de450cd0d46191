"""Where the service may send requests of its own: ``callback_url`` webhooks and ``VE_REMOTE_URL``.

A URL a caller (or a stolen key) chooses must not make the service reach what only it can reach:
its own loopback, the private network, a cloud's metadata address (169.254.169.254). So an
outbound URL is http or https, and every address its host resolves to is a public (global)
one, unless the operator lists the host, or the networks its addresses lie in, in
``VE_OUTBOUND_ALLOW``.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from video_emotions.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")


class UnresolvedHostError(InputError):
    """The URL's host did not resolve: a network problem (maybe passing), not a refused address."""


def parse_outbound_allow(allow: str) -> tuple[set[str], list[IPNetwork]]:
    """``VE_OUTBOUND_ALLOW`` as host names (lower case) and networks (an IP is a one-address network)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for position, entry in enumerate((part.strip() for part in allow.split(",")), start=1):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if "/" in entry or ":" in entry or not entry.strip("."):
            raise InputError(
                f"VE_OUTBOUND_ALLOW entry {position} is not a host name, an IP address or a CIDR network"
            )
        hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """Global, and none of the kinds ``is_global`` lets by (multicast: 224.0.0.0/4 counts as global)."""
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _kind(address: IPAddress) -> str:
    """What sort of non-public address ``address`` is, for the message."""
    for attribute, kind in (
        ("is_loopback", "loopback"),
        ("is_unspecified", "unspecified"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return kind
    return "non-public"


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` stands for: itself when it is an IP literal (no DNS), else DNS's answer."""
    try:
        return [_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHostError(f"host {host!r} does not resolve ({type(exc).__name__}: {exc})") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = _address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_outbound_url(url: str, allow: str, *, what: str) -> None:
    """Raise InputError unless the service may send requests to ``url``.

    ``what`` names the URL in the message (``callback_url``, ``VE_REMOTE_URL``). ``allow`` is
    ``VE_OUTBOUND_ALLOW``: host names, IPs and CIDR networks, comma-separated. A host listed by
    name is allowed whatever it resolves to; otherwise each of its addresses must be public or
    lie in a listed network. The message names the host, never the whole URL (whose path or
    query may hold a token). A host that does not resolve raises :class:`UnresolvedHostError`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{what} is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise InputError(f"{what} must be an http:// or https:// URL, not {shown}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InputError(f"{what} has no host")
    hosts, networks = parse_outbound_allow(allow)
    if host.lower() in hosts:
        return
    try:
        addresses = resolve(host, port or (443 if scheme == "https" else 80))
    except UnresolvedHostError as exc:
        raise UnresolvedHostError(f"{what}: {exc}") from exc
    refused = [
        address
        for address in addresses
        if not is_public(address) and not any(address in network for network in networks)
    ]
    if refused:
        listed = ", ".join(f"{address} ({_kind(address)})" for address in refused)
        raise InputError(
            f"{what} host {host!r} resolves to an address that is not public: {listed}; the service "
            "only sends requests to public addresses, unless VE_OUTBOUND_ALLOW lists the host or its "
            "network (e.g. VE_OUTBOUND_ALLOW=10.0.0.0/8,hooks.internal)"
        )

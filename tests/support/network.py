"""The guard that fails any test opening a connection beyond this machine's loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class OutboundConnection(AssertionError):
    pass


#: Every refused attempt, so a test can see one that library code caught and ignored.
OUTBOUND_ATTEMPTS: list[str] = []


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    return _is_local_host(address[0])


def _is_local_host(host: Any) -> bool:
    if host is None or isinstance(host, bytes):
        host = host.decode() if host else ""
    if host in ("localhost", "", socket.gethostname()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse, while open, every connection and name lookup beyond loopback."""
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def refuse(message: str) -> OutboundConnection:
        OUTBOUND_ATTEMPTS.append(message)  # kept even if the caller swallows the error
        return OutboundConnection(message)

    def guarded(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise refuse(f"outbound connection attempted to {address!r}")
        return original(sock, address)

    def guarded_ex(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise refuse(f"outbound connection attempted to {address!r}")
        return original_ex(sock, address)

    original_lookup = socket.getaddrinfo

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local_host(host):
            raise refuse(f"name lookup of {host!r} attempted")
        return original_lookup(host, *args, **kwargs)

    socket.socket.connect = guarded  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = guarded_lookup
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
        socket.socket.connect_ex = original_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_lookup

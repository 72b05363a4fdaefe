"""The suite's guard against outbound connections really guards."""

from __future__ import annotations

import socket

import pytest

from tests.support.network import OutboundConnection


def test_a_connection_beyond_loopback_is_refused() -> None:
    with socket.socket() as s, pytest.raises(OutboundConnection):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed


def test_a_name_lookup_is_refused() -> None:
    with pytest.raises(OutboundConnection):
        socket.getaddrinfo("publicsuffix.org", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())

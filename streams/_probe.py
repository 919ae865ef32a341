"""Ask a Kafka broker whether it serves requests, with one ApiVersions round trip.

A listening port is not enough: Kafka binds its listeners early and only starts
processing requests once the broker has caught up with the controller and been
unfenced. ApiVersions v0 (API key 18) is the one request every broker version answers
(Kafka protocol guide, "Retrieving Supported API versions"), and needs no client library,
so the probe works from synchronous code and leaves no logger noise behind.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["accepts_requests"]

_API_VERSIONS = 18
_CORRELATION_ID = 0x4C51  # any value; echoed back by the broker
_CLIENT_ID = b"liqmon-probe"


def accepts_requests(host: str, port: int, *, timeout_s: float = 2.0) -> bool:
    """True if the broker at host:port answers ApiVersions without an error code."""
    header = struct.pack(">hhih", _API_VERSIONS, 0, _CORRELATION_ID, len(_CLIENT_ID))
    request = header + _CLIENT_ID
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive(conn, 4))
            body = _receive(conn, size)
    except (OSError, struct.error):
        return False
    if len(body) < 6:
        return False
    correlation_id, error_code = struct.unpack_from(">ih", body)
    return bool(correlation_id == _CORRELATION_ID and error_code == 0)


def _receive(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)

"""The monitor's small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

A minimal HTTP/1.1 responder on asyncio streams: every request gets one response
and the connection closes. It serves scrapes and probes, nothing else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST

from monitor.errors import ConfigError

__all__ = ["HealthServer"]

_REQUEST_TIMEOUT_S = 5.0


class HealthServer:
    """Serves metrics and probes for one monitor.

    ``exposition`` gets the series names asked for with ``/metrics?name[]=a&name[]=b``
    (none: every series).

    ``readiness`` returns ``(ready, reason)``; ``/readyz`` answers 200 when ready
    and 503 with the reason otherwise. ``/healthz`` answers 200 while the event
    loop runs.
    """

    def __init__(
        self,
        host: str,
        port: int,
        exposition: Callable[[list[str]], bytes],
        readiness: Callable[[], tuple[bool, str]],
    ) -> None:
        self._host = host
        self._port = port
        self._exposition = exposition
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and serve; a port in use is a ConfigError naming the setting to change."""
        try:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(
                f"cannot serve /metrics on {self._host}:{self._port} ({reason}); "
                "set service.http_host/service.http_port (LIQMON_SERVICE__HTTP_PORT) to a free "
                "address, or 0 for any free port"
            ) from None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            status, content_type, body = self._respond(request_line)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _respond(self, request_line: bytes) -> tuple[str, str, bytes]:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"only GET is served\n"
        path, _, query = parts[1].partition("?")
        if path == "/metrics":
            names = parse_qs(query).get("name[]", [])
            return "200 OK", CONTENT_TYPE_LATEST, self._exposition(names)
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ready, reason = self._readiness()
            if ready:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", f"not ready: {reason}\n".encode()
        return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"

"""A webhook endpoint for tests: records every JSON body POSTed to it.

Serves HTTP/1.1 on 127.0.0.1 (a free port) with asyncio streams, one request per
connection. ``fail_next`` makes the next N requests answer 503, so a test can check that a
sender retries; ``gate`` (an Event) holds each answer until it is set, so a test can act
while a request is in flight (``in_flight`` is set when one arrives). Tests wait for what
they expect with ``wait_for`` (a condition and a deadline, never a fixed sleep).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """Collects the JSON bodies of POST requests; ``url`` is where to send them."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.attempts = 0
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self.in_flight = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the receiver first"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(
        self, condition: Callable[[list[Any]], bool], what: str, timeout_s: float = 60.0
    ) -> None:
        """Return once ``condition(received)`` holds; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not condition(self.received):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"webhook: {what} not received in {timeout_s:.0f}s"
            self._changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            self.attempts += 1
            if not request_line.startswith(b"POST"):
                status = "405 Method Not Allowed"
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = "503 Service Unavailable"
            else:
                self.received.append(json.loads(body))
                status = "200 OK"
            if self.gate is not None:
                self.in_flight.set()
                await self.gate.wait()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            self._changed.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

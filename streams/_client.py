"""The lifecycle every aiokafka wrapper of liqmon shares."""

from __future__ import annotations

from types import TracebackType
from typing import Any, ClassVar, Self

from streams.errors import StreamsError

__all__ = ["ClientWrapper"]


class ClientWrapper:
    """``start()``/``stop()``, ``async with``, and a clear error when used unstarted.

    Subclasses set ``_role`` (named in that error) and assign the started aiokafka
    client to ``_client`` in ``start()``. ``stop()`` is safe to call twice.
    """

    _role: ClassVar[str] = "client"
    _client: Any = None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _started(self) -> Any:
        if self._client is None:
            raise StreamsError(f"the {self._role} is not started: call start() or use `async with`")
        return self._client

"""Forward chosen margin events to a webhook: the engine of ``liqmon notify``.

A subscriber without code of its own: every event of the chosen types on ``margin-events``
becomes one HTTP POST (Slack or Teams incoming webhook, or generic JSON). Delivery is
at-least-once made idempotent by event id:

* the consumer group's offset of a partition is committed only after the webhook accepted
  every chosen event before it, so a restart resumes after the last delivered event;
* on assignment the last ``dedupe_window`` records before the committed offset are read back
  (not delivered) to remember their event ids, and an event whose id was delivered is never
  sent again. That covers the monitor republishing an event after its own crash (event ids
  are deterministic) and a crash of ``notify`` between delivery and commit is the one case
  left, which the ``Idempotency-Key`` header (the event id) lets a receiver absorb.

Events are read ``read_committed``, so aborted transactions are never forwarded. A webhook
that fails (connection error, timeout, 408, 429, 5xx) is retried with exponential backoff;
one that refuses (any other 4xx) or is still failing after ``give_up_after_s`` stops the
command with an error, leaving the event uncommitted for the next start.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec
import structlog

from monitor import __version__
from monitor.errors import ConfigError, LiqmonError
from monitor.schema import MarginEvent
from monitor.tail import format_event
from streams import TopicPartition
from streams.settings import KafkaSettings

__all__ = [
    "NotifyError",
    "NotifySettings",
    "RetryPolicy",
    "Webhook",
    "WebhookFormat",
    "forward_events",
    "payload",
]

WebhookFormat = Literal["json", "slack", "teams"]

_log = structlog.get_logger("liqmon.notify")
_decode = msgspec.json.Decoder(MarginEvent).decode
_encode = msgspec.json.Encoder().encode
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class NotifyError(LiqmonError):
    """The webhook refused an event, or kept failing for longer than allowed."""


class _Stopped(Exception):
    """Asked to stop while waiting to retry: the event stays uncommitted."""


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with full jitter: wait up to first, 2x first, ... capped at max."""

    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    #: Stop (exit 1, nothing committed past the event) after failing this long on one event.
    give_up_after_s: float = 600.0
    #: One request's timeout.
    request_timeout_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1 = the first retry)."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class NotifySettings(msgspec.Struct, frozen=True, kw_only=True):
    """What ``liqmon notify`` forwards, where, and how it remembers what it sent."""

    url: str
    format: WebhookFormat = "json"
    #: Event types to forward (an empty set forwards all).
    types: frozenset[str] = frozenset()
    group_id: str = "liqmon-notify"
    #: A new group starts at the oldest retained event instead of the newest.
    from_beginning: bool = False
    #: Records per partition read back at assignment to remember delivered event ids.
    dedupe_window: int = 10_000
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)


def payload(event: MarginEvent, fmt: WebhookFormat) -> bytes:
    """The request body for ``event`` in ``fmt``.

    Slack and Teams incoming webhooks both take ``{"text": ...}``; generic JSON carries the
    event as published (docs/events.md) beside a readable ``text`` line.
    """
    text = format_event(event)
    if fmt == "slack":
        return _encode({"text": f"*liqmon {event.type}* `{event.account}`\n{text}"})
    if fmt == "teams":
        return _encode({"text": f"**liqmon {event.type}** {event.account}\n\n{text}"})
    return _encode(
        {
            "event_id": event.event_id,
            "type": event.type,
            "account": event.account,
            "text": text,
            "event": event,
        }
    )


def _safe_url(url: str) -> str:
    """Scheme and host of ``url``: webhook paths carry tokens and must not reach the logs."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}"


class Webhook:
    """POSTs events to one URL, retrying transient failures with backoff."""

    def __init__(
        self,
        url: str,
        fmt: WebhookFormat,
        retry: RetryPolicy,
        *,
        stop: asyncio.Event | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"webhook URL must be http:// or https:// with a host, got {_safe_url(url)!r}; "
                "pass --url (or LIQMON_NOTIFY_URL)"
            )
        self.url = url
        self.format: WebhookFormat = fmt
        self.retry = retry
        self._stop = stop or asyncio.Event()
        self.target = _safe_url(url)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def deliver(self, event: MarginEvent) -> int:
        """Send ``event`` until the webhook accepts it; return the number of attempts.

        A request in flight is completed (it is bounded by ``request_timeout_s``); a wait
        before a retry ends early when ``stop`` is set, raising ``_Stopped``.
        """
        body = payload(event, self.format)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            failure = await asyncio.to_thread(self._post, body, event.event_id)
            if failure is None:
                return attempt
            status, reason = failure
            if status is not None and 400 <= status < 500 and status not in _RETRYABLE_STATUS:
                raise NotifyError(
                    f"webhook {self.target} refused event {event.event_id} with HTTP {status} "
                    f"({reason}); check the URL and --format, then start liqmon notify again "
                    "(the event was not committed and will be sent again)"
                )
            if time.monotonic() - started > self.retry.give_up_after_s:
                raise NotifyError(
                    f"webhook {self.target} still failing after "
                    f"{self.retry.give_up_after_s:.0f}s ({reason}); the event "
                    f"{event.event_id} was not committed and will be sent on the next start"
                )
            delay = self.retry.delay(attempt)
            _log.warning(
                "webhook_retry",
                target=self.target,
                event_id=event.event_id,
                attempt=attempt,
                reason=reason,
                retry_in_s=round(delay, 3),
            )
            try:
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            except TimeoutError:
                continue
            raise _Stopped

    def _post(self, body: bytes, event_id: str) -> tuple[int | None, str] | None:
        """One POST (in a worker thread): None on 2xx, else (status or None, reason)."""
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": event_id,
                "User-Agent": f"liqmon-notify/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.retry.request_timeout_s) as reply:
                reply.read()
                return None
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, f"{type(exc).__name__}: {reason}"


class _DeliveredIds:
    """Event ids already delivered, newest kept (bounded, oldest forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = max(capacity, 1)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


async def forward_events(
    kafka: KafkaSettings,
    topic: str,
    settings: NotifySettings,
    *,
    on_ready: Callable[[int], None] | None = None,
    on_delivered: Callable[[MarginEvent, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Forward the chosen events of ``topic`` to the webhook until ``stop`` is set.

    Stopping never falls between a delivery and its commit: the event being sent is
    finished and committed (or, while waiting to retry, left uncommitted) first.

    ``on_ready`` gets the number of partitions assigned at the first assignment;
    ``on_delivered`` each delivered event and the attempts it took.
    """
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    from streams.settings import client_kwargs

    stop = stop or asyncio.Event()
    webhook = Webhook(settings.url, settings.format, settings.retry, stop=stop)
    delivered = _DeliveredIds(settings.dedupe_window * 4)
    # Per partition: records below this offset were delivered before; only remember their ids.
    resume_at: dict[TopicPartition, int] = {}
    consumer: Any = AIOKafkaConsumer(
        **client_kwargs(kafka),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if settings.from_beginning else "latest",
        isolation_level="read_committed",
    )

    class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
        async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
            for tp in revoked:
                resume_at.pop(tp, None)

        async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            if not assigned:
                return
            # aiokafka makes an assignment live before it awaits this listener: paused, the
            # partitions yield nothing fetched from the committed offset while it waits on
            # the broker (delivered then, before the window's ids were read back, an event
            # the monitor had resent went out twice). Records fetched meanwhile are dropped
            # by aiokafka and fetched again from the position set here.
            consumer.pause(*assigned)
            try:
                beginnings = await consumer.beginning_offsets(list(assigned))
                for tp in assigned:
                    committed = await consumer.committed(tp)
                    if committed is None:
                        continue
                    resume_at[tp] = committed
                    consumer.seek(tp, max(beginnings[tp], committed - settings.dedupe_window))
            finally:
                consumer.resume(*assigned)

    consumer.subscribe([topic], listener=_Rewind())
    await consumer.start()
    try:
        announced = False
        while not stop.is_set():
            batches: Mapping[TopicPartition, list[Any]] = await consumer.getmany(timeout_ms=500)
            if not announced and consumer.assignment():
                announced = True
                _log.info(
                    "notify_started",
                    topic=topic,
                    partitions=len(consumer.assignment()),
                    target=webhook.target,
                    format=settings.format,
                    types=sorted(settings.types) or "all",
                )
                if on_ready is not None:
                    on_ready(len(consumer.assignment()))
            for tp, records in batches.items():
                if stop.is_set():
                    break
                await _forward_partition(
                    consumer, tp, records, settings, webhook, delivered, resume_at, on_delivered
                )
    except _Stopped:
        pass
    finally:
        await consumer.stop()


async def _forward_partition(
    consumer: Any,
    tp: TopicPartition,
    records: list[Any],
    settings: NotifySettings,
    webhook: Webhook,
    delivered: _DeliveredIds,
    resume_at: dict[TopicPartition, int],
    on_delivered: Callable[[MarginEvent, int], None] | None,
) -> None:
    """Deliver one partition's batch in order, committing after each delivery."""
    if tp not in consumer.assignment():
        return  # revoked since the fetch: its new owner sends these
    pending_commit: int | None = None
    for record in records:
        if webhook.stopping:
            break
        replay = record.offset < resume_at.get(tp, 0)
        kind = _header(record.headers, "type")
        skipped = kind == "margin_parameters"  # dynamic margin's record, not an account's
        if skipped or (settings.types and kind is not None and kind not in settings.types):
            pending_commit = None if replay else record.offset + 1
            continue
        try:
            event = _decode(record.value or b"")
        except msgspec.DecodeError as exc:
            if not replay:
                _log.warning(
                    "not_a_margin_event",
                    partition=tp.partition,
                    offset=record.offset,
                    reason=str(exc),
                )
                pending_commit = record.offset + 1
            continue
        if replay:
            if not settings.types or event.type in settings.types:
                delivered.add(event.event_id)
            continue
        if (settings.types and event.type not in settings.types) or event.event_id in delivered:
            pending_commit = record.offset + 1
            continue
        attempts = await webhook.deliver(event)
        delivered.add(event.event_id)
        _log.info("delivered", event_id=event.event_id, type=event.type, attempts=attempts)
        if on_delivered is not None:
            on_delivered(event, attempts)
        pending_commit = None
        if not await _commit(consumer, tp, record.offset + 1):
            return
    if pending_commit is not None:
        await _commit(consumer, tp, pending_commit)


async def _commit(consumer: Any, tp: TopicPartition, offset: int) -> bool:
    """Commit ``offset``; False if the partition moved to another member meanwhile.

    The new owner resumes from the last offset committed here and remembers the ids before
    it, so only an event delivered just before the rebalance can be sent once more.
    """
    from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

    if tp not in consumer.assignment():
        return False
    try:
        await consumer.commit({tp: offset})
    except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
        _log.warning("commit_skipped_by_rebalance", partition=tp.partition, reason=str(exc))
        return False
    return True

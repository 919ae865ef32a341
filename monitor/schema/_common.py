"""Names and limits every message shares: ids, account modes and states, event types."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["MAX_ID_LENGTH", "AccountMode", "AccountState", "Id", "MarginEventType", "Trigger"]

MAX_ID_LENGTH = 256
"""Longest account id, ledger id, symbol or asset name accepted on the input topics."""

Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
"""A name or id on the wire: at most ``MAX_ID_LENGTH`` characters, so no input can make an
event or a dead letter too large to publish."""

AccountMode = Literal["cross", "isolated", "portfolio"]
AccountState = Literal["healthy", "margin_call", "liquidation", "bankrupt"]
Trigger = Literal["price", "ledger", "restore"]
MarginEventType = Literal[
    "margin_call",
    "margin_call_cleared",
    "liquidation",
    "liquidation_cleared",
    "bankruptcy",
    "bankruptcy_cleared",
]

"""The transactional producer's retry back-off between back-to-back transactions.

aiokafka keeps it in a module constant (``BACKOFF_OVERRIDE``); ``streams.producer`` sets
it when imported. If an aiokafka upgrade renames or drops the constant, this fails,
rather than every cycle's transaction silently taking 20 ms longer again
(``tests/bench/bench_transactions.py`` measures the difference).
"""

from __future__ import annotations

import aiokafka.producer.sender
import pytest

import streams.producer

pytestmark = pytest.mark.unit


def test_aiokafka_retries_a_refused_transaction_start_after_our_back_off() -> None:
    assert hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE")
    assert aiokafka.producer.sender.BACKOFF_OVERRIDE == streams.producer.TRANSACTION_RETRY_BACKOFF_S
    assert streams.producer.TRANSACTION_RETRY_BACKOFF_S < 0.02 / 5

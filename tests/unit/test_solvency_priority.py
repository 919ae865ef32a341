"""The stress's worker thread yields the cores: nice 19 and, on Linux, ``SCHED_IDLE``."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from monitor.solvency_publisher import lower_priority

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's scheduling policy"
)


def _policy_and_nice() -> tuple[int, int]:
    native_id = threading.get_native_id()
    return os.sched_getscheduler(native_id), os.getpriority(os.PRIO_PROCESS, native_id)


def test_worker_thread_runs_idle_at_nice_19() -> None:
    with ThreadPoolExecutor(max_workers=1, initializer=lower_priority) as pool:
        policy, nice = pool.submit(_policy_and_nice).result()
    assert policy == os.SCHED_IDLE
    assert nice == 19


def test_only_the_worker_thread_is_lowered() -> None:
    before = _policy_and_nice()
    with ThreadPoolExecutor(max_workers=1, initializer=lower_priority) as pool:
        pool.submit(_policy_and_nice).result()
    assert _policy_and_nice() == before
    assert before[0] != os.SCHED_IDLE

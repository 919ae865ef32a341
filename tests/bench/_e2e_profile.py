"""Run ``liqmon`` with a profiler switched on and off by signals (``bench_e2e.py --profile``).

``python tests/bench/_e2e_profile.py MODE OUT -- <liqmon arguments>`` runs the CLI
unchanged; SIGUSR1 starts profiling, SIGUSR2 stops it and writes ``OUT``, so only the
phase the benchmark chooses (a throughput round) is profiled.

* ``sample``: a thread samples the main thread's stack every millisecond and counts,
  per function, the samples in which it is the innermost frame (self) or anywhere on
  the stack (total). Low overhead, wall-clock shares; a sample can only be taken when
  the main thread lets go of the GIL (the switch interval is lowered to 0.5 ms), so time
  inside one long C call is charged to the Python line that follows it. Time the event
  loop spends waiting in ``select``/``epoll`` shows as the selector's functions (idle).
* ``cprofile``: :mod:`cProfile` on the main thread; exact call counts, but its
  per-call overhead inflates small Python functions.
"""

from __future__ import annotations

import cProfile
import json
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, Final

_SAMPLE_EVERY_S: Final = 0.001


def where(code: Any) -> str:
    """``package/module.py:Qualified.name`` of a code object, paths cut at site-packages."""
    filename: str = code.co_filename
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{code.co_qualname}"


class Sampler:
    """Counts stack samples of the main thread in a background thread."""

    def __init__(self) -> None:
        self.own: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.samples = 0
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.seconds = 0.0

    def start(self) -> None:
        """Start sampling afresh (counts of an earlier start are dropped)."""
        self.own, self.total, self.samples = Counter(), Counter(), 0
        sys.setswitchinterval(0.0005)
        self._running.set()
        self._began = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
        self.seconds = time.perf_counter() - self._began
        return {
            "mode": "sample",
            "seconds": self.seconds,
            "samples": self.samples,
            "own": self.own.most_common(40),
            "total": self.total.most_common(60),
        }

    def _run(self) -> None:
        main = threading.main_thread().ident
        assert main is not None
        while self._running.is_set():
            frame: FrameType | None = sys._current_frames().get(main)
            if frame is not None:
                self.samples += 1
                self.own[where(frame.f_code)] += 1
                seen: set[str] = set()
                while frame is not None:
                    seen.add(where(frame.f_code))
                    frame = frame.f_back
                self.total.update(seen)
            time.sleep(_SAMPLE_EVERY_S)


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    rest = sys.argv[sys.argv.index("--") + 1 :]
    profiles = [cProfile.Profile()]
    sampler = Sampler()

    def start(*_: object) -> None:
        if mode == "cprofile":
            profiles[0] = cProfile.Profile()
            profiles[0].enable()
        else:
            sampler.start()

    def stop(*_: object) -> None:
        if mode == "cprofile":
            profiles[0].disable()
            profiles[0].dump_stats(out)
        else:
            out.write_text(json.dumps(sampler.stop()))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from monitor.cli import main as liqmon

    return liqmon(rest)


if __name__ == "__main__":
    raise SystemExit(main())

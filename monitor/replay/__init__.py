"""`liqmon replay`: recorded input through the engine; what the monitor would have
published, and how it compares with what ``margin-events`` holds (docs/replay.md)."""

from monitor.replay._compare import (
    Comparison,
    Difference,
    Scope,
    compare,
    within_scope,
    within_span,
)
from monitor.replay._files import FileRecord, read_input_file
from monitor.replay._kafka import read_published
from monitor.replay._output import publish_events, read_events_file, write_events
from monitor.replay._pipeline import Pipeline, Published
from monitor.replay._run import ReplayOptions, ReplayResult, replay

__all__ = [
    "Comparison",
    "Difference",
    "FileRecord",
    "Pipeline",
    "Published",
    "ReplayOptions",
    "ReplayResult",
    "Scope",
    "compare",
    "publish_events",
    "read_events_file",
    "read_input_file",
    "read_published",
    "replay",
    "within_scope",
    "within_span",
    "write_events",
]

"""Run events and the bus that hands them to subscribers (CLI progress, widgets).

Events are emitted after the step they describe is committed, so a subscriber never
sees something the store does not have.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

EVENT_KINDS: tuple[str, ...] = (
    "started",
    "step",
    "tool",
    "fill",
    "refusal",
    "mode",
    "ended",
    "error",
)


@dataclass(frozen=True)
class RunEvent:
    """Something that happened in a run."""

    run_id: int
    kind: str
    message: str
    step_index: int | None = None
    sim_time: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[RunEvent], None]


class EventBus:
    """Thread-safe fan-out of run events, keeping the latest ones for late subscribers."""

    def __init__(self, keep: int = 2000) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self.recent: deque[RunEvent] = deque(maxlen=keep)

    def subscribe(self, callback: Subscriber, replay: bool = False) -> Callable[[], None]:
        """Call ``callback`` for each event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)
            past = list(self.recent) if replay else []
        for event in past:
            callback(event)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: RunEvent) -> None:
        with self._lock:
            self.recent.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the run
                log.exception("run event subscriber failed on %s", event.kind)

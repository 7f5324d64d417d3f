"""Knowledge cutoffs: whether a run's window lies inside its model's training data.

An LLM whose training data ends after a run's period starts may have read those prices
and that news, so its backtest is no clean test. A run is ``inside`` the training window
when its period starts on or before the model's cutoff (a month cutoff covers the whole
month), ``after`` when it starts later, and ``unknown`` when no cutoff is known. The
cutoff is the model's parameter ``knowledge_cutoff`` when set, else the catalog's.
Forward runs trade bars as they come, so they are always ``after``; a baseline or policy
is no LLM and has no training window at all (``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from ttg_lab.agents.policy import is_policy
from ttg_lab.engine.reader import RunInfo
from ttg_lab.llm.catalog import cutoff_last_day, load_catalog

TrainingWindow = Literal["inside", "after", "unknown"]
"""Where an LLM run's period starts against its model's knowledge cutoff."""

CUTOFF_PARAMETER = "knowledge_cutoff"


@dataclass(frozen=True)
class KnowledgeCutoff:
    """A model's cutoff as written (``2024-11`` or ``2024-09-30``), the last day it covers
    and where it comes from (the catalog's source, or the model's parameters)."""

    text: str
    last_day: date
    source: str


@dataclass(frozen=True)
class TrainingFlag:
    """What a run's flag says: its window (None: not an LLM), the cutoff it was judged by
    (None: unknown or not needed) and whether it is a forward run."""

    window: TrainingWindow | None
    cutoff: KnowledgeCutoff | None
    forward: bool

    @property
    def label(self) -> str:
        """The flag in a few words, for tables: ``inside (cutoff 2025-07)``."""
        if self.window is None:
            return "not an LLM"
        if self.forward:
            return "after (forward run)"
        return self.window if self.cutoff is None else f"{self.window} (cutoff {self.cutoff.text})"

    def describe(self) -> str:
        """The flag in a sentence, for reports."""
        if self.window is None:
            return "not an LLM: no training window"
        if self.forward:
            return "after the knowledge cutoff: a forward run trades bars as they come"
        if self.cutoff is None:
            return (
                "unknown: no knowledge cutoff is known for this model "
                f"(set its parameter {CUTOFF_PARAMETER}, YYYY-MM or YYYY-MM-DD)"
            )
        cut = f"knowledge cutoff {self.cutoff.text} ({self.cutoff.source})"
        if self.window == "inside":
            return (
                f"inside the training window: the period starts on or before the {cut}; "
                "the model may have read these prices and this news"
            )
        return f"after the {cut}"


def model_cutoff(ai_model_id: str, parameters: Mapping[str, Any]) -> KnowledgeCutoff | None:
    """The model's knowledge cutoff: its parameter ``knowledge_cutoff`` (refused naming the
    value unless YYYY-MM or YYYY-MM-DD), else the catalog's; None when neither knows it."""
    given = parameters.get(CUTOFF_PARAMETER)
    if given is not None:
        last = cutoff_last_day(given, f"parameter {CUTOFF_PARAMETER}")
        return KnowledgeCutoff(str(given), last, "the model's parameters")
    entry = load_catalog().get(ai_model_id)
    if entry is None or entry.knowledge_cutoff is None:
        return None
    last = cutoff_last_day(entry.knowledge_cutoff, f"the catalog's knowledge_cutoff of {entry.id}")
    return KnowledgeCutoff(entry.knowledge_cutoff, last, f"catalog: {entry.cutoff_source}")


def training_flag(
    ai_model_id: str,
    parameters: Mapping[str, Any],
    period_start: datetime | date,
    forward: bool,
) -> TrainingFlag:
    """The flag of a run of ``ai_model_id`` (with the parameters its snapshot recorded)
    whose period starts at ``period_start`` (its day is compared with the cutoff)."""
    if is_policy(ai_model_id):
        return TrainingFlag(None, None, forward)
    cutoff = model_cutoff(ai_model_id, parameters)
    if forward:
        return TrainingFlag("after", cutoff, True)
    if cutoff is None:
        return TrainingFlag("unknown", None, False)
    start = period_start.date() if isinstance(period_start, datetime) else period_start
    return TrainingFlag("inside" if start <= cutoff.last_day else "after", cutoff, False)


def run_training_flag(info: RunInfo) -> TrainingFlag:
    """Whether a stored run lies inside its model's training window, from its snapshot's
    model and its period's start (a forward run is always after)."""
    model = info.snapshot.model
    forward = info.snapshot.forward is not None
    return training_flag(model.ai_model_id, model.parameters, info.start, forward)

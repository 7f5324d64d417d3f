"""The analyst's reader: the acting user's run reader, plus what only analysis needs:
metrics of an equity curve and counterfactual replays of a run's recorded orders. Every
run it reads is checked like any read of :class:`~ttg_lab.engine.reader.RunReader`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ttg_lab.attribution import RecordedRun, load_recorded, replay
from ttg_lab.engine.reader import RunReader
from ttg_lab.metrics.stored import metrics_for
from ttg_lab.rules.constraints import RuleSet


class AnalystReader(RunReader):
    """Reads stored runs for one acting user, with metrics and replays."""

    def recorded(self, run_id: Any) -> RecordedRun:
        """What a counterfactual replay of the run needs: its snapshot and orders."""
        return load_recorded(self._store, self.run(run_id).id)

    def metrics(
        self, market: str, interval: str, equity: pd.Series, initial: float, ledger: pd.DataFrame
    ) -> dict[str, Any]:
        """Metrics of an equity curve against its market's benchmark over the same bars."""
        return metrics_for(self._store, market, interval, equity, initial, ledger)

    def replay(self, recorded: RecordedRun, rules: RuleSet) -> tuple[float, list[dict[str, Any]]]:
        """Final equity and gate decisions of recorded orders replayed under ``rules``
        (on the market data they were recorded against)."""
        return replay(self._store, recorded, rules)

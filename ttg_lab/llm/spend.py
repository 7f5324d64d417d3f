"""A run's LLM spend as the lab can vouch for it: a sum in USD, or unknown.

A recorded cost of 0.00 is the truth for a baseline, a replay or a free local model, and a
lie for a run whose spend was never counted. This module is the one place that tells them
apart (every outlet shows :attr:`LLMCost.usd`, ``None`` meaning unknown):

- an imported run (AI-Trader's records carry no LLM calls or token counts);
- a model whose token prices are not known (not in the catalog, no ``input_per_mtok`` /
  ``output_per_mtok``, not a free local provider);
- a priced model with committed calls answered without a token count.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttg_lab.agents.policy import is_policy
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.formatting import llm_cost_text
from ttg_lab.llm.providers import llm_settings, price_known
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingRun
from ttg_lab.store.usage import uncounted_calls


@dataclass(frozen=True)
class LLMCost:
    """A run's LLM spend: ``usd`` (None: unknown) and, when unknown, why."""

    usd: float | None
    why_unknown: str = ""

    @property
    def known(self) -> bool:
        return self.usd is not None

    @property
    def text(self) -> str:
        """``$0.0123``, ``$0.0000`` (a known zero) or ``unknown``."""
        return llm_cost_text(self.usd)


def llm_cost(snapshot: RunSnapshot, recorded_usd: float, uncounted: int = 0) -> LLMCost:
    """The spend of a run with ``snapshot`` whose committed calls cost ``recorded_usd``, of
    which ``uncounted`` were answered without a token count."""
    model = snapshot.model
    if snapshot.agent_path == "imported":
        return LLMCost(None, "imported run: its LLM calls and tokens were not recorded")
    if is_policy(model.ai_model_id):
        return LLMCost(recorded_usd)  # a baseline: no paid model behind it
    try:
        priced = price_known(model.ai_model_id, model.parameters)
    except ValidationError:
        priced = False
    if not priced:
        return LLMCost(None, f"no token price for {model.ai_model_id!r}")
    if uncounted:
        try:
            settings = llm_settings(model.ai_model_id, model.parameters)
            free = settings.input_per_mtok == settings.output_per_mtok == 0
        except ValidationError:
            free = False
        if not free:
            return LLMCost(None, f"{uncounted} call(s) answered without a token count")
    return LLMCost(recorded_usd)


def run_llm_costs(session: Session, run_ids: list[int]) -> dict[int, LLMCost]:
    """:func:`llm_cost` of each run of ``run_ids`` (two queries, whatever their number)."""
    rows = session.execute(
        select(TradingRun.id, TradingRun.strategy_snapshot, TradingRun.llm_cost).where(
            TradingRun.id.in_(run_ids)
        )
    ).all()
    uncounted = uncounted_calls(session, [row.id for row in rows])
    return {
        int(row.id): llm_cost(
            RunSnapshot.from_json(row.strategy_snapshot),
            float(row.llm_cost),
            uncounted.get(int(row.id), 0),
        )
        for row in rows
    }


def run_llm_cost(store: Store, run_id: int) -> LLMCost:
    """:func:`llm_cost` of one run."""
    with store.session() as session:
        costs = run_llm_costs(session, [run_id])
    if run_id not in costs:
        raise NotFoundError(f"no run {run_id}")
    return costs[run_id]

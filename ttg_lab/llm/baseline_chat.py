"""Offline baselines as LangChain chat models that answer with tool calls.

The decision logic stays in :mod:`ttg_lab.agents.baselines`; this model only speaks it:
on the step's opening message it asks the policy for orders and returns them as trade
tool calls, and once the tools have answered it closes the step with its decision and
the finish signal. Deterministic for a given seed, so the whole LLM path (prompt, tool
calls over MCP, gate, ledger, reasoning) runs with no network and no key.

In a masked run the policy still decides on the real context (so a masked run books what
an unmasked one does), but what it sends is in masked terms, as a model's would be: its
tool calls' symbols and quantities and its text go through the run's mask.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from ttg_lab.agents.policy import Decision, Order, Policy
from ttg_lab.engine.context import RunContext
from ttg_lab.jsonsafe import json_safe
from ttg_lab.llm.local import LocalChatModel
from ttg_lab.llm.messages import FINISH_SIGNAL, text_of

ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


class BaselineChatModel(LocalChatModel):
    """A chat model driven by a baseline policy over the run's context."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: Policy
    context: RunContext
    _decisions: dict[int, Decision] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "ttg-baseline"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        opening = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        answers = [m for m in messages[opening + 1 :] if isinstance(m, ToolMessage)]
        step = self.context.step_index
        reply = self._close_step(step, answers) if answers else self._open_step(step)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _open_step(self, step: int) -> AIMessage:
        decision = self.policy.step(self.context)
        self._decisions = {step: decision}
        text = []
        if step == 0:
            text.append(f"PLAN: {self.policy.plan()}")
        if decision.analysis:
            text.append(f"ANALYSIS: {decision.analysis}")
        if not decision.orders:
            text.append(f"DECISION: no trade.\n{FINISH_SIGNAL}")
        calls = [
            {
                "name": str(order.action)[:100],
                "args": json_safe(self._arguments(order)),
                "id": f"c{i + 1}",
                "type": "tool_call",
            }
            for i, order in enumerate(decision.orders)
        ]
        return AIMessage(
            content=self._text("\n".join(text)), tool_calls=calls, usage_metadata=ZERO_USAGE
        )

    def _arguments(self, order: Order) -> dict[str, Any]:
        """An order's tool arguments, in masked terms in a masked run."""
        mask = self.context.mask
        if mask is None:
            return {"symbol": order.symbol, "quantity": order.quantity}
        if order.symbol not in mask.pseudonyms:  # not the run's: refused, named as masked
            return {"symbol": mask.text(order.symbol), "quantity": order.quantity}
        return {
            "symbol": mask.symbol(order.symbol),
            "quantity": mask.quantity(order.symbol, float(order.quantity)),
        }

    def _text(self, text: str) -> str:
        """What the policy writes, in masked terms in a masked run."""
        return text if self.context.mask is None else self.context.mask.text(text)

    def _close_step(self, step: int, answers: list[ToolMessage]) -> AIMessage:
        decision = self._decisions.get(step) or Decision()
        outcomes = []
        for answer in answers:
            try:
                data = json.loads(text_of(answer.content))
                outcome = f"{data.get('action')} {data.get('symbol')}: {data.get('status')}"
                if data.get("reason"):
                    outcome += f" ({data['reason']})"
            except (json.JSONDecodeError, AttributeError):
                outcome = f"{answer.name}: {text_of(answer.content)}"
            outcomes.append(outcome)
        rationale = self._text(decision.rationale)  # the outcomes come masked from the tools
        text = f"DECISION: {rationale} Outcome: {'; '.join(outcomes)}\n{FINISH_SIGNAL}"
        return AIMessage(content=text, usage_metadata=ZERO_USAGE)

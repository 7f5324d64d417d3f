"""The model a replayed run holds: it answers nothing, because replay never goes live."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from ttg_lab.llm.local import LocalChatModel
from ttg_lab.llm.recording import ReplayError


class OfflineModel(LocalChatModel):
    """Stands in for the real client in replay: every answer must come from the record."""

    @property
    def _llm_type(self) -> str:
        return "ttg-offline"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise ReplayError("replay tried a live model call; refusing (no network in replay)")

"""The model a replayed run holds: it answers nothing, because replay never goes live."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable

from ttg_lab.llm.recording import ReplayError


class OfflineModel(BaseChatModel):
    """Stands in for the real client in replay: every answer must come from the record."""

    @property
    def _llm_type(self) -> str:
        return "ttg-offline"

    def bind_tools(  # type: ignore[override]
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[Any, BaseMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise ReplayError("replay tried a live model call; refusing (no network in replay)")

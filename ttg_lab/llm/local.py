"""Chat models that answer inside this process (baselines, the replay stand-in): they know
the tools by name, so binding tool schemas to them changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable


class LocalChatModel(BaseChatModel):
    """Base of in-process chat models: ``bind_tools`` returns the model itself."""

    def bind_tools(  # type: ignore[override]
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[Any, BaseMessage]:
        return self

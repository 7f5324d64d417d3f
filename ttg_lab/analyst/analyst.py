"""``lab.analyst(run).ask("...")``: a conversation about one run, persisted per model, run
and user, answered by the LLM analyst when one is configured and by the offline analyst
otherwise. Answers carry resolved citations; rule suggestions are saved only through
:meth:`Analyst.accept` with the user's confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from sqlalchemy import select

from ttg_lab.analyst.citations import Citation, resolve
from ttg_lab.analyst.offline import OfflineAnalyst
from ttg_lab.analyst.reader import AnalystReader
from ttg_lab.analyst.tools import AnalysisTools, Suggestion
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.global_settings import GlobalSettings
from ttg_lab.model_rules import RuleInfo, RuleService
from ttg_lab.models import ModelService
from ttg_lab.rules.params import CATEGORIES
from ttg_lab.secrets import redact, redact_data
from ttg_lab.store.database import Store
from ttg_lab.store.schema import ChatMessage, ChatSession, User
from ttg_lab.text import check_text

MAX_QUESTION = 4000


@dataclass
class Answer:
    """What the analyst said, what it rests on, and what it proposes."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    source: str = "offline"

    def __str__(self) -> str:
        return self.text


class AnalystLab(Protocol):
    """What the analyst needs of a lab (the lab floor sits above it): the store and user,
    the global settings naming its model, the models and their rules."""

    @property
    def store(self) -> Store: ...
    @property
    def user(self) -> User: ...
    @property
    def settings(self) -> GlobalSettings: ...
    @property
    def models(self) -> ModelService: ...
    @property
    def rules(self) -> RuleService: ...


class Analyst:
    """A persisted conversation about one run."""

    def __init__(
        self,
        lab: AnalystLab,
        run_id: int,
        model: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.lab = lab
        self.reader = AnalystReader(lab.store, lab.user)
        self.tools = AnalysisTools(self.reader, run_id)  # another user's run is not found
        self.run_id = self.tools.run_id
        self.model_id = self.tools.model_id
        self.model_runs = self.reader.model_runs(run_id)
        with lab.store.session() as session:  # the conversation is the user's own
            chat = session.scalars(
                select(ChatSession).where(
                    ChatSession.model_id == self.model_id,
                    ChatSession.run_id == self.run_id,
                    ChatSession.user_id == lab.user.id,
                )
            ).first()
            if chat is None:
                chat = ChatSession(model_id=self.model_id, run_id=self.run_id, user_id=lab.user.id)
                session.add(chat)
                session.flush()
            self.session_id = chat.id
        self.llm = None
        configured = model or lab.settings.get("analyst.ai_model_id")
        if configured:
            from ttg_lab.analyst.llm import LLMAnalyst
            from ttg_lab.llm.providers import llm_settings

            params = (
                parameters if parameters is not None else lab.settings.get("analyst.parameters", {})
            )
            self.llm = LLMAnalyst(
                lab.store,
                self.tools,
                llm_settings(configured, params),
                lab.models.get(self.model_id).name,
                self.session_id,
            )
        self.offline = OfflineAnalyst(self.tools, self.model_runs)

    @property
    def mode(self) -> str:
        return "llm" if self.llm else "offline"

    def history(self) -> list[dict[str, Any]]:
        """The session's messages, oldest first."""
        with self.lab.store.session() as session:
            rows = session.scalars(
                select(ChatMessage)
                .where(ChatMessage.session_id == self.session_id)
                .order_by(ChatMessage.id)
            ).all()
            return [
                {
                    "id": r.id,
                    "role": r.role,
                    "content": r.content,
                    "tool_calls": r.tool_calls,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    def _save(
        self, role: str, content: str, tool_calls: list[dict[str, Any]] | None = None
    ) -> None:
        with self.lab.store.session() as session:
            session.add(
                ChatMessage(
                    session_id=self.session_id,
                    role=role,
                    content=content,
                    tool_calls=tool_calls or [],
                )
            )

    def ask_stream(self, question: str) -> Iterator[str]:
        """Stream the answer in pieces; the whole answer is then in ``last_answer``."""
        if not isinstance(question, str) or not question.strip():
            raise ValidationError("ask a question")
        if len(question) > MAX_QUESTION:
            raise ValidationError(f"questions are limited to {MAX_QUESTION} characters")
        check_text(question, "the question")  # no key is stored (nor sent to an LLM)
        history = self.history()
        self._save("user", question)
        if self.llm is not None:
            messages: list[BaseMessage] = [
                HumanMessage(m["content"]) if m["role"] == "user" else AIMessage(m["content"])
                for m in history
            ]
            pieces = []
            for piece in self.llm.stream(messages, question, len(history)):
                pieces.append(piece)
                yield redact(piece)
            text, calls, source = "".join(pieces), self.llm.tool_calls, "llm"
        else:
            self.offline.calls = []
            text = redact(self.offline.answer(question))  # it quotes the agent's reasoning
            yield from re.split(r"(?<=\n)", text)
            calls, source = self.offline.calls, "offline"
        text, calls = redact(text), redact_data(calls)  # what the agent read may hold a key
        self._save("assistant", text, calls)
        run_ids = {self.run_id, *self.model_runs.values()}
        suggestions = [s for s in self.tools.suggestions.values() if s.id in text or s.name in text]
        self.last_answer = Answer(
            text, resolve(self.reader, text, run_ids, self.tools.mask), suggestions, calls, source
        )

    def ask(self, question: str) -> Answer:
        """The whole answer at once."""
        for _ in self.ask_stream(question):
            pass
        return self.last_answer

    def accept(self, suggestion_id: str, confirm: bool = False) -> RuleInfo:
        """Save a suggested rule on the run's model; needs ``confirm=True`` (the user's act)."""
        suggestion = self.tools.suggestions.get(suggestion_id)
        if suggestion is None:
            raise NotFoundError(f"no suggestion {suggestion_id!r} in this conversation")
        if not confirm:
            raise ValidationError(
                f"confirm to add rule {suggestion.name!r} {suggestion.parameters} "
                f"to the model (accept(..., confirm=True))"
            )
        return self.lab.rules.add(
            self.model_id,
            suggestion.name,
            suggestion.parameters,
            category=suggestion.category if suggestion.category in CATEGORIES else "risk",
            description=f"suggested by the analyst on run {self.run_id}: {suggestion.rationale}"[
                :2000
            ],
        )

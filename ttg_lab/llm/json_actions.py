"""JSON-action mode: tool calls for models and servers without (working) native ones.

:class:`JsonActionModel` wraps the run's chat model. It describes the tools in the system
prompt, asks for one JSON object ``{"actions": [{"tool": ..., "arguments": {...}}],
"final": "..."}`` constrained by a JSON schema in the provider's ``response_format``
style, and turns the answer into the same ``AIMessage.tool_calls`` a native answer has,
so the same agent, MCP tools, gate and ledger run. An answer that is not such an object,
an unknown tool or arguments that break the tool's schema become invalid tool calls the
model is told about. Tool results go back as user messages (no tool role needed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import jsonschema
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

from ttg_lab.llm.client import loads_lenient
from ttg_lab.llm.messages import text_of, tool_schemas
from ttg_lab.llm.providers import ResponseFormat

ANSWER_KEY = "json_answer"
"""Where a parsed answer keeps the model's own text (``additional_kwargs``), so the
conversation sent back shows the model what it wrote."""

FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def answer_schema(tool_names: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of one answer."""
    return {
        "type": "object",
        "properties": {
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "tool": {"type": "string", "enum": list(tool_names)},
                        "arguments": {"type": "object"},
                    },
                    "required": ["tool", "arguments"],
                },
            },
            "final": {"type": "string"},
        },
        "required": ["actions", "final"],
    }


def response_format(style: ResponseFormat, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` body field a server of ``style`` takes for ``schema``."""
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "actions", "schema": schema}}
    if style == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    return None


def instructions(functions: Sequence[dict[str, Any]]) -> str:
    """The tools and the answer format, as the system prompt's last paragraph."""
    lines = [
        'Answer with one JSON object: {"actions": [{"tool": NAME, "arguments": {...}}], '
        '"final": TEXT}. Put your reasoning in "final"; leave "actions" empty when you are '
        "done for this step. Tools:"
    ]
    for function in functions:
        properties = function.get("parameters", {}).get("properties", {})
        lines.append(
            f"- {function['name']}: {function.get('description', '').strip()} "
            f"arguments: {json.dumps(properties)}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ParsedAnswer:
    """One answer read as actions."""

    final: str
    calls: list[ToolCall]
    invalid: list[InvalidToolCall]


def _read_json(text: str) -> Any:
    """The answer's JSON: as written (escaped or double-encoded too), else the object
    between its first ``{`` and last ``}`` (code fences or words around it)."""
    body = FENCE.sub("", text.strip())
    try:
        return loads_lenient(body)
    except ValueError:
        start, end = body.find("{"), body.rfind("}")
        if not 0 <= start < end:
            raise
        return loads_lenient(body[start : end + 1])


def parse_answer(text: str, functions: Sequence[dict[str, Any]], turn: int) -> ParsedAnswer:
    """The answer ``text`` of conversation turn ``turn`` as tool calls (ids ``json_<turn>_<i>``,
    the same for the same conversation, so replays match)."""
    schemas = {f["name"]: f.get("parameters", {}) for f in functions}

    def invalid(i: int, name: str | None, args: Any, error: str) -> InvalidToolCall:
        raw = args if isinstance(args, str) or args is None else json.dumps(args)
        return InvalidToolCall(
            type="invalid_tool_call", id=f"json_{turn}_{i}", name=name, args=raw, error=error
        )

    try:
        value = _read_json(text)
    except ValueError as exc:
        return ParsedAnswer(text, [], [invalid(0, None, text, f"answer is not valid JSON: {exc}")])
    if not isinstance(value, dict) or not isinstance(value.get("actions", []), list):
        error = 'answer must be one JSON object with a list "actions" and a text "final"'
        return ParsedAnswer(text, [], [invalid(0, None, text, error)])
    calls: list[ToolCall] = []
    bad: list[InvalidToolCall] = []
    for i, action in enumerate(value.get("actions") or []):
        name = action.get("tool") if isinstance(action, dict) else None
        args = action.get("arguments", {}) if isinstance(action, dict) else action
        if not isinstance(name, str) or name not in schemas:
            known = ", ".join(schemas)
            bad.append(invalid(i, None, args, f"unknown tool {name!r}; tools: {known}"))
            continue
        if not isinstance(args, dict):
            bad.append(invalid(i, name, args, f"arguments of {name} must be a JSON object"))
            continue
        try:
            jsonschema.validate(args, schemas[name])
        except jsonschema.ValidationError as exc:
            bad.append(invalid(i, name, args, f"bad arguments for {name}: {exc.message}"))
            continue
        calls.append(ToolCall(type="tool_call", id=f"json_{turn}_{i}", name=name, args=args))
    final = value.get("final")
    return ParsedAnswer(final if isinstance(final, str) else "", calls, bad)


def render(
    messages: Sequence[BaseMessage], functions: Sequence[dict[str, Any]]
) -> list[BaseMessage]:
    """The conversation as a server without tools sees it: the tools described in the
    system prompt, each answer as the model's JSON, tool results (and what was wrong with
    an invalid action) as user messages."""
    errors: dict[str, str] = {}
    out: list[BaseMessage] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append(HumanMessage("\n\n".join(pending)))
            pending.clear()

    for message in messages:
        if isinstance(message, ToolMessage):
            call = message.tool_call_id
            if call in errors:
                pending.append(f"Action {call} could not be used: {errors[call]}")
            else:
                failed = " (failed)" if message.status == "error" else ""
                pending.append(
                    f"Result of {message.name} ({call}){failed}:\n{text_of(message.content)}"
                )
            continue
        flush()
        if isinstance(message, SystemMessage):
            out.append(SystemMessage(f"{text_of(message.content)}\n\n{instructions(functions)}"))
        elif isinstance(message, AIMessage):
            errors.update(
                {str(c.get("id")): str(c.get("error")) for c in message.invalid_tool_calls}
            )
            said = message.additional_kwargs.get(ANSWER_KEY)
            if not isinstance(said, str):
                actions = [{"tool": c["name"], "arguments": c["args"]} for c in message.tool_calls]
                said = json.dumps({"actions": actions, "final": text_of(message.content)})
            out.append(AIMessage(said))
        else:
            out.append(message)
    flush()
    return out


class JsonActionModel(BaseChatModel):
    """The run's chat model answering in JSON actions (see the module)."""

    tool_mode: ClassVar[str] = "json"
    inner: BaseChatModel
    style: ResponseFormat = "none"
    functions: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "ttg-json-actions"

    def bind_tools(  # type: ignore[override]
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[Any, BaseMessage]:
        schemas = [s["function"] for s in tool_schemas(tools)]
        return self.model_copy(update={"functions": schemas})

    def _request(self, messages: list[BaseMessage]) -> tuple[list[BaseMessage], dict[str, Any]]:
        names = [f["name"] for f in self.functions]
        body = response_format(self.style, answer_schema(names))
        return render(messages, self.functions), (
            {"extra_body": {"response_format": body}} if body else {}
        )

    def _answer(self, messages: list[BaseMessage], result: ChatResult) -> ChatResult:
        said = result.generations[0].message
        text = text_of(said.content)
        turn = sum(isinstance(m, AIMessage) for m in messages)
        parsed = parse_answer(text, self.functions, turn)
        answer = AIMessage(
            content=parsed.final,
            tool_calls=parsed.calls,
            invalid_tool_calls=parsed.invalid,
            additional_kwargs={ANSWER_KEY: text},
            usage_metadata=getattr(said, "usage_metadata", None),
            response_metadata=said.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=answer)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, extra = self._request(messages)
        result = await self.inner._agenerate(request, stop=stop, **extra)
        return self._answer(messages, result)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, extra = self._request(messages)
        return self._answer(messages, self.inner._generate(request, stop=stop, **extra))

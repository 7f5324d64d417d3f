"""Messages as plain, stable JSON: for fingerprints, the agent log and the record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage, messages_from_dict
from langchain_core.messages import message_to_dict as lc_message_to_dict
from langchain_core.utils.function_calling import convert_to_openai_tool

from ttg_lab.llm.prompt import FINISH_SIGNAL

__all__ = ["FINISH_SIGNAL", "dump_message", "load_message", "plain_message", "request_fingerprint"]


def text_of(content: Any) -> str:
    """The text of a message content (a string or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return str(content)


def plain_message(message: BaseMessage) -> dict[str, Any]:
    """Role, text, tool calls and tool answers of a message; nothing volatile (no ids of
    content blocks, no timings) so equal conversations give equal dicts."""
    plain: dict[str, Any] = {"role": message.type, "content": text_of(message.content)}
    if isinstance(message, AIMessage):
        if message.tool_calls:
            plain["tool_calls"] = [
                {"id": c.get("id"), "name": c["name"], "args": c["args"]}
                for c in message.tool_calls
            ]
        if message.invalid_tool_calls:
            plain["invalid_tool_calls"] = [
                {
                    "id": c.get("id"),
                    "name": c.get("name"),
                    "args": c.get("args"),
                    "error": c.get("error"),
                }
                for c in message.invalid_tool_calls
            ]
    if isinstance(message, ToolMessage):
        plain["tool_call_id"] = message.tool_call_id
        plain["name"] = message.name
        plain["status"] = message.status
    return plain


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI function schemas of LangChain tools (or already-converted dicts)."""
    return [t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools]


CHARS_PER_TOKEN = 4
"""Characters per token assumed where a token count must be known before a call."""


def estimate_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> int:
    """Prompt tokens of a request, estimated before it is sent (the model's tokenizer is
    not at hand): its messages' and tools' JSON at :data:`CHARS_PER_TOKEN`, rounded up."""
    return _tokens_of(
        {"messages": [plain_message(m) for m in messages], "tools": tool_schemas(tools)}
    )


def estimate_answer_tokens(answer: AIMessage) -> int:
    """Completion tokens of an answer whose server did not count them: its text and tool
    calls' JSON at :data:`CHARS_PER_TOKEN`, rounded up."""
    plain = plain_message(answer)
    return _tokens_of({k: v for k, v in plain.items() if k in ("content", "tool_calls")})


def _tokens_of(data: dict[str, Any]) -> int:
    blob = json.dumps(data, default=str, separators=(",", ":"))
    return -(-len(blob) // CHARS_PER_TOKEN)


def request_fingerprint(
    model_id: str,
    messages: Sequence[BaseMessage],
    tools: Sequence[Any],
    sampling: dict[str, Any],
    tool_mode: str = "native",
) -> str:
    """SHA-256 over everything that determines a model's answer (the tool mode counts
    when it is not native, so calls recorded before tool modes keep their fingerprints)."""
    payload: dict[str, Any] = {
        "model": model_id,
        "messages": [plain_message(m) for m in messages],
        "tools": tool_schemas(tools),
        "sampling": sampling,
    }
    if tool_mode != "native":
        payload["tool_mode"] = tool_mode
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def dump_message(message: BaseMessage) -> dict[str, Any]:
    """A message as JSON that :func:`load_message` restores exactly."""
    return json.loads(json.dumps(lc_message_to_dict(message), default=str))  # type: ignore[no-any-return]


def load_message(data: dict[str, Any]) -> BaseMessage:
    return messages_from_dict([data])[0]

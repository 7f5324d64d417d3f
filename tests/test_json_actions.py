"""JSON-action answers read into tool calls: the REAL SmolLM2 answer, escaped or
double-encoded JSON, unknown tools and arguments that break a tool's schema."""

from __future__ import annotations

import html
import json

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from support.openai_server import recording

from ttg_lab.llm.client import decoded_arguments, loads_lenient
from ttg_lab.llm.json_actions import ANSWER_KEY, parse_answer, render

BUY = {
    "name": "buy",
    "description": "Buy.",
    "parameters": {
        "type": "object",
        "properties": {"symbol": {"type": "string"}, "quantity": {"type": "number"}},
        "required": ["symbol", "quantity"],
    },
}
TOOLS = [BUY, {"name": "get_price_local", "parameters": {"type": "object", "properties": {}}}]


def test_the_real_broken_answer_is_an_invalid_call_naming_the_problem() -> None:
    real = recording("json_actions")["response"]["choices"][0]["message"]["content"]
    parsed = parse_answer(real, TOOLS, turn=0)
    assert parsed.calls == [] and len(parsed.invalid) == 1
    assert parsed.invalid[0]["error"] and parsed.invalid[0]["id"] == "json_0_0"


def test_escaped_or_double_encoded_answers_give_the_same_calls() -> None:
    answer = {
        "actions": [{"tool": "buy", "arguments": {"symbol": "AAPL", "quantity": 2}}],
        "final": "PLAN: buy.",
    }
    text = json.dumps(answer)
    for variant in (text, html.escape(text), json.dumps(text), f"```json\n{text}\n```"):
        parsed = parse_answer(variant, TOOLS, turn=3)
        assert [(c["name"], c["args"], c["id"]) for c in parsed.calls] == [
            ("buy", {"symbol": "AAPL", "quantity": 2}, "json_3_0")
        ]
        assert parsed.final == "PLAN: buy." and not parsed.invalid


def test_unknown_tools_and_bad_arguments_are_told_apart() -> None:
    text = json.dumps(
        {
            "actions": [
                {"tool": "sell_everything", "arguments": {}},
                {"tool": "buy", "arguments": {"symbol": "AAPL"}},
                {"tool": "buy", "arguments": "AAPL 1"},
                {"tool": "buy", "arguments": {"symbol": "MSFT", "quantity": 1}},
            ],
            "final": "",
        }
    )
    parsed = parse_answer(text, TOOLS, turn=1)
    errors = [c["error"] for c in parsed.invalid]
    assert "unknown tool 'sell_everything'; tools: buy, get_price_local" in errors[0]
    assert "bad arguments for buy: 'quantity' is a required property" in errors[1]
    assert "arguments of buy must be a JSON object" in errors[2]
    assert [c["args"] for c in parsed.calls] == [{"symbol": "MSFT", "quantity": 1}]


def test_native_arguments_are_decoded_when_string_or_escaped() -> None:
    args = '{"symbol": "AAPL", "quantity": 1}'
    assert json.loads(decoded_arguments(json.dumps(args))) == {"symbol": "AAPL", "quantity": 1}
    assert json.loads(decoded_arguments(html.escape(args))) == {"symbol": "AAPL", "quantity": 1}
    assert decoded_arguments('{"symbol": ') == '{"symbol": '  # left for the agent to report
    assert loads_lenient("[1]") == [1]


def test_the_conversation_goes_back_without_a_tool_role() -> None:
    said = '{"actions": [{"tool": "buy", "arguments": {"symbol": "AAPL"}}], "final": ""}'
    bad = {"name": "buy", "args": "{}", "id": "json_0_0", "error": "quantity missing"}
    messages = [
        SystemMessage("You trade."),
        HumanMessage("Go."),
        AIMessage("", invalid_tool_calls=[bad], additional_kwargs={ANSWER_KEY: said}),
        ToolMessage("malformed", tool_call_id="json_0_0", name="buy", status="error"),
    ]
    out = render(messages, TOOLS)
    assert [m.type for m in out] == ["system", "human", "ai", "human"]
    assert "Answer with one JSON object" in str(out[0].content)
    assert out[2].content == said
    assert out[3].content == "Action json_0_0 could not be used: quantity missing"

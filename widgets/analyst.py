"""Analyst chat panel: ask an AI strategy analyst about a run (the analyst itself is
built in Step 6; this lays out the conversation, the run picker and the input)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import traitlets

from ttg_lab.errors import ValidationError
from widgets.common import Controller, status_html


class AnalystController(Controller):
    run_id = traitlets.Int(0)
    question = traitlets.Unicode("")
    history: traitlets.List[Any] = traitlets.List()

    def runs(self) -> list[tuple[str, int]]:
        return [
            (f"{r['id']}: {r['model']} #{r['run_number']} ({r['status']})", int(r["id"]))
            for r in self.lab.runs().to_dict("records")
        ]

    def ask(self) -> bool:
        with self.action():
            if not self.run_id:
                raise ValidationError("choose a run to ask about")
            if not self.question.strip():
                raise ValidationError("type a question")
            analyst = getattr(self.lab, "analyst", None)
            if analyst is None:
                raise ValidationError("the analyst is not available in this version")
            answer = analyst(self.run_id).ask(self.question)
            self.history = [
                *self.history,
                {"role": "user", "content": self.question},
                {"role": "assistant", "content": str(answer)},
            ]
            self.question = ""
        return self.ok


def view(ctl: AnalystController) -> w.Widget:
    run = w.Dropdown(description="Run", options=[("", 0), *ctl.runs()])
    w.link((ctl, "run_id"), (run, "value"))
    question = w.Textarea(placeholder="How did this run do, and why?", layout=w.Layout(width="70%"))
    w.link((ctl, "question"), (question, "value"))
    send = w.Button(description="Ask", button_style="primary")
    conversation, status = w.HTML(), w.HTML()

    def redraw(*_: Any) -> None:
        conversation.value = (
            "".join(
                f'<div class="ttg-card" style="display:block">'
                f'<div class="label">{html.escape(m["role"])}</div>'
                f'<div style="white-space:pre-wrap">{html.escape(m["content"])}</div></div>'
                for m in ctl.history
            )
            or '<div class="ttg-empty">no questions yet</div>'
        )
        status.value = status_html(ctl)

    ctl.observe(redraw, names=["history", "message", "error"])
    send.on_click(lambda _: ctl.ask())
    redraw()
    return w.VBox(
        [w.HTML('<div class="ttg-title">Analyst</div>'), run, conversation, question, send, status]
    )

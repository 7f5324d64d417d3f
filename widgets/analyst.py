"""Analyst chat panel: ask the AI strategy analyst about a run, watch the answer stream,
follow its citations into the reasoning browser and trade list, and accept a suggested
rule after confirming it."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import traitlets

from ttg_lab import TTGLabError, ValidationError
from ttg_lab.secrets import redact
from widgets.common import Controller, on_pick, set_options, status_html
from widgets.dispatch import call_soon


class AnalystController(Controller):
    run_id = traitlets.Int(0)
    question = traitlets.Unicode("")
    history: traitlets.List[Any] = traitlets.List()
    streaming = traitlets.Unicode("")
    busy = traitlets.Bool(False)
    citations: traitlets.List[Any] = traitlets.List()
    suggestions: traitlets.List[Any] = traitlets.List()
    pending_accept = traitlets.Unicode("")
    choices: traitlets.List[Any] = traitlets.List()
    """The runs the user can ask about, as (label, run id)."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.analyst: Any = None
        self.on_cite: Callable[[str, str], None] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the runs again, and the open conversation (it may have grown elsewhere);
        a run that is gone closes its conversation."""
        with self.action():
            self.choices = [
                (f"{r['id']}: {r['model']} #{r['run_number']} ({r['status']})", int(r["id"]))
                for r in self.lab.runs().table().to_dict("records")
            ]
            if self.run_id and self.run_id not in [run_id for _, run_id in self.choices]:
                self._close()
            elif self.analyst is not None and not self.busy:
                self.history = self.analyst.history()

    def _close(self) -> None:
        """No conversation open: nothing of an earlier run stays on screen."""
        self.run_id, self.analyst, self.history = 0, None, []
        self.citations, self.suggestions, self.streaming, self.pending_accept = [], [], "", ""

    def open(self, run_id: int) -> None:
        """Open (or reload) the conversation about a run."""
        with self.action():
            self._close()
            if not run_id:
                raise ValidationError("choose a run to ask about")
            self.run_id = run_id
            self.analyst = self.lab.analyst(run_id)
            self.history = self.analyst.history()
            self.citations, self.suggestions, self.streaming = [], [], ""
            self.message = f"{self.analyst.mode} analyst on run {run_id}"

    def ask(self, wait: bool = False) -> bool:
        """Ask the question; the answer streams into ``streaming`` (in a thread)."""
        with self.action():
            if self.analyst is None or self.analyst.run_id != self.run_id:
                if not self.run_id:
                    raise ValidationError("choose a run to ask about")
                self.analyst = self.lab.analyst(self.run_id)
            if not self.question.strip():
                raise ValidationError("type a question")
            if self.busy:
                raise ValidationError("the analyst is still answering")
            question, self.question, self.busy, self.streaming = self.question, "", True, ""
            worker = threading.Thread(target=self._answer, args=(question,), daemon=True)
            worker.start()
            if wait:
                worker.join(300)
        return self.ok

    def _answer(self, question: str) -> None:
        analyst = self.analyst  # the conversation asked; the panel may open another meanwhile
        try:
            for piece in analyst.ask_stream(question):
                call_soon(self._appender(piece))
            answer = analyst.last_answer

            def finish() -> None:
                if self.analyst is analyst:
                    self.history = analyst.history()
                    self.citations = [vars(c) for c in answer.citations]
                    self.suggestions = [s.to_dict() for s in answer.suggestions]
                self.streaming, self.busy = "", False

            call_soon(finish)
        except TTGLabError as exc:
            self._fail(str(exc))
        except Exception as exc:  # the panel must never die with the thread
            self._fail(f"the analyst failed ({type(exc).__name__})")

    def _appender(self, piece: str) -> Callable[[], None]:
        def append() -> None:
            self.streaming += piece

        return append

    def _fail(self, text: str) -> None:
        def apply() -> None:
            self.error, self.busy = text, False

        call_soon(apply)

    def cite(self, kind: str, ref: str) -> None:
        """Follow a citation (the dashboard opens the reasoning browser there)."""
        if self.on_cite is not None:
            self.on_cite(kind, ref)

    def request_accept(self, suggestion_id: str) -> None:
        self.pending_accept = suggestion_id
        self.error = ""
        self.message = f"add suggested rule {suggestion_id} to the model? confirm or cancel"

    def confirm_accept(self) -> bool:
        with self.action():
            if not self.pending_accept:
                raise ValidationError("choose a suggestion first")
            rule = self.analyst.accept(self.pending_accept, confirm=True)
            self.message = f"added rule {rule.name!r} {rule.parameters}"
            self.pending_accept = ""
        return self.ok

    def cancel_accept(self) -> None:
        self.pending_accept, self.message = "", "not added"


def view(ctl: AnalystController) -> w.Widget:
    run = w.Dropdown(description="Run", options=[("", 0), *ctl.choices])
    question = w.Textarea(placeholder="How did this run do, and why?", layout=w.Layout(width="70%"))
    w.link((ctl, "question"), (question, "value"))
    send = w.Button(description="Ask", button_style="primary")
    conversation, live, status = w.HTML(), w.HTML(), w.HTML()
    links, suggestions = w.HBox(), w.VBox()
    confirm = w.Button(description="Confirm rule", button_style="danger")
    cancel = w.Button(description="Cancel")

    def redraw(*_: Any) -> None:
        conversation.value = (
            "".join(
                f'<div class="ttg-card" style="display:block"><div class="label">'
                f'{html.escape(m["role"])}</div><div style="white-space:pre-wrap">'
                f"{html.escape(redact(m['content']))}</div></div>"
                for m in ctl.history
            )
            or '<div class="ttg-empty">no questions yet</div>'
        )
        live.value = (
            f'<div class="ttg-card analyst-stream" style="display:block">'
            f'<div style="white-space:pre-wrap">{html.escape(ctl.streaming)}</div></div>'
            if ctl.busy
            else ""
        )
        status.value = status_html(ctl)
        buttons = []
        for c in ctl.citations:
            button = w.Button(
                description=f"{c['kind']} {c['ref']}",
                tooltip=c["label"],
                disabled=not c["valid"],
                layout=w.Layout(width="auto"),
            )
            button.add_class("ttg-citation")
            button.on_click(lambda _, c=c: ctl.cite(c["kind"], c["ref"]))
            buttons.append(button)
        links.children = buttons
        rows = []
        for s in ctl.suggestions:
            accept = w.Button(description=f"Accept {s['name']}", layout=w.Layout(width="auto"))
            accept.on_click(lambda _, s=s: ctl.request_accept(s["id"]))
            rows.append(
                w.HBox(
                    [
                        w.HTML(
                            html.escape(
                                f"{s['name']} {s['parameters']}: effect {s['effect']:+,.2f} "
                                f"({s['orders_changed']} orders)"
                            )
                        ),
                        accept,
                    ]
                )
            )
        suggestions.children = rows
        confirm.layout.display = cancel.layout.display = "" if ctl.pending_accept else "none"

    ctl.observe(
        redraw,
        names=[
            "history",
            "streaming",
            "busy",
            "citations",
            "suggestions",
            "message",
            "error",
            "pending_accept",
        ],
    )
    ctl.observe(
        lambda _: set_options(run, [("", 0), *ctl.choices], ctl.run_id),
        names=["choices", "run_id"],
    )
    on_pick(run, lambda run_id: ctl.open(run_id) if run_id else None)
    send.on_click(lambda _: ctl.ask())
    confirm.on_click(lambda _: ctl.confirm_accept())
    cancel.on_click(lambda _: ctl.cancel_accept())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Analyst</div>'),
            run,
            conversation,
            live,
            w.HTML("<b>Sources</b>"),
            links,
            suggestions,
            w.HBox([confirm, cancel]),
            question,
            send,
            status,
        ]
    )

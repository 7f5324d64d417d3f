"""Rules editor: a model's structured rules, validated on save, and what each rule did
to a run (blocked, resized, forced, and the counterfactual P&L effect)."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import ValidationError, options
from ttg_lab.formatting import money
from widgets.common import (
    Controller,
    on_pick,
    set_options,
    show_figure,
    status_html,
    table_html,
)


class RulesController(Controller):
    model = traitlets.Unicode("")
    rules: traitlets.List[Any] = traitlets.List()
    name = traitlets.Unicode("")
    category = traitlets.Unicode("risk")
    priority = traitlets.Int(5)
    parameters = traitlets.Unicode('{"max_position_pct": 10}')
    scope = traitlets.Unicode("{}")
    description = traitlets.Unicode("")
    attribution: traitlets.List[Any] = traitlets.List()
    model_choices = traitlets.List(traitlets.Unicode())
    """The models the user can see (signatures)."""
    run_choices: traitlets.List[Any] = traitlets.List()
    """The chosen model's runs, as (label, run id), for attribution."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    def refresh(self) -> None:
        """Read the models, and the chosen model's rules and runs, again; a model that is
        gone is no longer shown."""
        with self.action():
            self.model_choices = [m.signature for m in self.lab.models.list()]
            if self.model not in self.model_choices:
                self.model, self.rules, self.run_choices, self.attribution = "", [], [], []
            elif self.model:
                self.rules = [vars(r) for r in self.lab.rules.list(self.model)]
                self.run_choices = self.runs()

    def choose(self, model: str) -> None:
        """Show ``model``'s rules and runs; the attribution of another model's run goes."""
        with self.action():
            self.model, self.rules, self.run_choices, self.attribution = model, [], [], []
            self.rules = [vars(r) for r in self.lab.rules.list(model)]
            self.run_choices = self.runs()

    def _json(self, text: str, what: str) -> Any:
        try:
            return json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{what} must be JSON ({exc.msg})") from None

    def save(self) -> bool:
        """Add the rule, or update the rule of that name; validated first."""
        with self.action():
            if not self.model:
                raise ValidationError("choose a model first")
            params, scope = (
                self._json(self.parameters, "parameters"),
                self._json(self.scope, "scope"),
            )
            existing = {r["name"] for r in self.rules}
            if self.name.strip() in existing:
                self.lab.rules.update(
                    self.model,
                    self.name.strip(),
                    parameters=params,
                    scope=scope,
                    category=self.category,
                    priority=self.priority,
                    description=self.description,
                )
                self.message = f"updated rule {self.name.strip()!r}"
            else:
                self.lab.rules.add(
                    self.model,
                    self.name,
                    params,
                    category=self.category,
                    description=self.description,
                    scope=scope,
                    priority=self.priority,
                )
                self.message = f"added rule {self.name.strip()!r}"
            self.rules = [vars(r) for r in self.lab.rules.list(self.model)]
        return self.ok

    def edit(self, name: str) -> None:
        """Load a rule into the form."""
        with self.action():
            rule = self.lab.rules.get(self.model, name)
            self.name, self.category, self.priority = rule.name, rule.category, rule.priority
            self.parameters, self.scope = json.dumps(rule.parameters), json.dumps(rule.scope)
            self.description = rule.description

    def remove(self, name: str) -> bool:
        with self.action(f"removed rule {name!r}"):
            self.lab.rules.remove(self.model, name)
            self.rules = [vars(r) for r in self.lab.rules.list(self.model)]
        return self.ok

    def toggle(self, name: str) -> None:
        with self.action():
            rule = self.lab.rules.get(self.model, name)
            self.lab.rules.update(self.model, name, active=not rule.active)
            self.rules = [vars(r) for r in self.lab.rules.list(self.model)]
            self.message = f"rule {name!r} {'paused' if rule.active else 'active'}"

    def runs(self) -> list[tuple[str, int]]:
        if not self.model:
            return []
        return [
            (f"#{r['run_number']} ({r['status']})", int(r["id"]))
            for r in self.lab.runs(self.model).table().to_dict("records")
        ]

    def load_attribution(self, run_id: int) -> None:
        with self.action():
            self.attribution = self.lab.run(run_id).attribution().to_dict("records")


def view(ctl: RulesController) -> w.Widget:
    from ttg_lab.charts import rule_attribution

    model = w.Dropdown(description="Model", options=["", *ctl.model_choices])
    name = w.Text(description="Name")
    category = w.Dropdown(description="Category", options=list(options.RULE_CATEGORIES))
    priority = w.BoundedIntText(description="Priority", min=1, max=10)
    params = w.Textarea(description="Limits", layout=w.Layout(width="60%"))
    scope = w.Text(description="Scope", placeholder='{"symbols": ["NVDA"]}')
    description = w.Text(description="Note")
    for widget, trait in (
        (name, "name"),
        (category, "category"),
        (priority, "priority"),
        (params, "parameters"),
        (scope, "scope"),
        (description, "description"),
    ):
        w.link((ctl, trait), (widget, "value"))
    pick = w.Dropdown(description="Rule", options=[])
    save, edit, toggle, remove = (
        w.Button(description=d) for d in ("Save", "Edit", "Pause/resume", "Remove")
    )
    save.button_style, remove.button_style = "primary", "danger"
    run = w.Dropdown(description="Run", options=ctl.run_choices)
    attribute = w.Button(description="Attribution")
    table, status, attribution, chart = w.HTML(), w.HTML(), w.HTML(), w.Output()
    known = w.HTML("<small>Limits: " + ", ".join(options.RULE_PARAMETERS) + "</small>")

    def redraw(*_: Any) -> None:
        table.value = table_html(
            pd.DataFrame(ctl.rules).drop(columns=["id", "model_id"], errors="ignore")
        )
        set_options(pick, [r["name"] for r in ctl.rules], pick.value)
        status.value = status_html(ctl)
        frame = pd.DataFrame(ctl.attribution)
        attribution.value = table_html(
            frame, {"final_value": money, "final_without": money, "pnl_effect": money}
        )
        show_figure(chart, None if frame.empty else rule_attribution(frame))

    ctl.observe(redraw, names=["rules", "attribution", "message", "error"])
    ctl.observe(
        lambda _: set_options(model, ["", *ctl.model_choices], ctl.model),
        names=["model_choices", "model"],
    )
    ctl.observe(lambda _: set_options(run, ctl.run_choices, run.value), names="run_choices")
    on_pick(model, lambda signature: ctl.choose(signature) if signature else None)
    save.on_click(lambda _: ctl.save())
    edit.on_click(lambda _: ctl.edit(pick.value) if pick.value else None)
    toggle.on_click(lambda _: ctl.toggle(pick.value) if pick.value else None)
    remove.on_click(lambda _: ctl.remove(pick.value) if pick.value else None)
    attribute.on_click(lambda _: ctl.load_attribution(run.value) if run.value else None)
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Rules</div>'),
            model,
            table,
            w.HBox([pick, edit, toggle, remove]),
            name,
            category,
            priority,
            params,
            known,
            scope,
            description,
            save,
            status,
            w.HTML("<b>Per-rule attribution</b>"),
            w.HBox([run, attribute]),
            attribution,
            chart,
        ]
    )

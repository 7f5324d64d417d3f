"""Models panel: list, create, edit and delete (with confirmation) AI trading models."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as w
import traitlets

from ttg_lab import ValidationError, options
from ttg_lab.formatting import money
from widgets.common import Controller, on_pick, set_options, status_html, table_html


class ModelsController(Controller):
    """State and actions of the models panel."""

    rows: traitlets.List[Any] = traitlets.List()
    selected = traitlets.Unicode("")
    pending_delete = traitlets.Unicode("")
    name = traitlets.Unicode("")
    ai_model_id = traitlets.Unicode("baseline/momentum")
    market = traitlets.Unicode("us")
    initial_cash = traitlets.Float(10_000.0)
    tickers = traitlets.Unicode("")
    parameters = traitlets.Unicode("{}")
    description = traitlets.Unicode("")
    custom_instructions = traitlets.Unicode("")
    custom_rules = traitlets.Unicode("")

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    @property
    def ai_models(self) -> list[str]:
        return self.lab.models.available_ai_models()

    def refresh(self) -> None:
        """Read the models again; the form of a model that is gone is emptied."""
        with self.action():
            self.rows = self.lab.models.frame().to_dict("records")
            if self.selected and self.selected not in [r["signature"] for r in self.rows]:
                self.new()

    def new(self) -> None:
        """Empty the form for a new model."""
        self.selected = ""
        self.name, self.ai_model_id, self.market = "", "baseline/momentum", "us"
        self.initial_cash, self.tickers, self.parameters = 10_000.0, "", "{}"
        self.description = self.custom_instructions = self.custom_rules = ""
        self.message = self.error = ""

    def select(self, signature: str) -> None:
        """Load a model into the form for editing."""
        with self.action():
            model = self.lab.models.get(signature)
            self.selected = model.signature
            self.name, self.ai_model_id, self.market = model.name, model.ai_model_id, model.market
            self.initial_cash = model.initial_cash
            self.tickers = ", ".join(model.tickers)
            self.parameters = json.dumps(model.parameters)
            self.description = model.description
            self.custom_instructions = model.custom_instructions
            self.custom_rules = model.custom_rules

    def _parameters(self) -> dict[str, Any]:
        try:
            value = json.loads(self.parameters or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f'parameters must be JSON, e.g. {{"top_k": 5}} ({exc.msg})'
            ) from None
        if not isinstance(value, dict):
            raise ValidationError("parameters must be a JSON object")
        return value

    def save(self) -> bool:
        """Create the model, or update the selected one. Nothing is saved on bad input."""
        with self.action():
            fields: dict[str, Any] = {
                "name": self.name,
                "ai_model_id": self.ai_model_id,
                "initial_cash": self.initial_cash,
                "tickers": self.tickers,
                "parameters": self._parameters(),
                "description": self.description,
                "custom_instructions": self.custom_instructions,
                "custom_rules": self.custom_rules,
            }
            if self.selected:
                model = self.lab.models.update(self.selected, **fields)
                self.message = f"saved {model.signature}"
            else:
                model = self.lab.models.create(market=self.market, **fields)
                self.message = f"created {model.signature}"
            self.selected = model.signature
            self.rows = self.lab.models.frame().to_dict("records")
        return self.ok

    def toggle_share(self) -> bool:
        """Share the selected model with every user (read-only), or stop sharing it."""
        with self.action():
            if not self.selected:
                raise ValidationError("choose a model to share first")
            model = self.lab.models.get(self.selected)
            model = self.lab.models.share(model, not model.shared)
            state = "shared with every user, read-only" if model.shared else "private again"
            self.message = f"{model.signature} is {state}"
            self.rows = self.lab.models.frame().to_dict("records")
        return self.ok

    def request_delete(self, signature: str) -> None:
        """First step of deleting: ask for confirmation."""
        if not signature:
            self.error, self.message = "choose a model to delete first", ""
            return
        self.pending_delete = signature
        self.message = f"delete {signature} and all its runs? confirm or cancel"
        self.error = ""

    def confirm_delete(self) -> bool:
        with self.action():
            if not self.pending_delete:
                raise ValidationError("nothing to delete: choose a model first")
            self.lab.models.delete(self.pending_delete)
            self.message = f"deleted {self.pending_delete}"
            self.pending_delete = ""
            self.new_after_delete()
        return self.ok

    def new_after_delete(self) -> None:
        message = self.message
        self.new()
        self.message = message
        self.rows = self.lab.models.frame().to_dict("records")

    def cancel_delete(self) -> None:
        self.pending_delete = ""
        self.message = "delete cancelled"


def view(ctl: ModelsController) -> w.Widget:
    """The models panel."""
    import pandas as pd

    table = w.HTML()
    picker = w.Dropdown(description="Model", options=[""])
    name = w.Text(description="Name")
    ai_model = w.Combobox(  # any <provider>/<model> id, not only those listed
        description="AI model",
        options=ctl.ai_models,
        ensure_option=False,
        placeholder="e.g. ollama/qwen2.5:7b",
    )
    market = w.Dropdown(description="Market", options=list(options.MARKETS))
    cash = w.FloatText(description="Cash")
    tickers = w.Text(description="Tickers", placeholder="empty = whole market")
    params = w.Text(description="Parameters")
    description = w.Text(description="Description")
    instructions = w.Textarea(description="Instructions", layout=w.Layout(width="60%"))
    rules = w.Textarea(description="Text rules", layout=w.Layout(width="60%"))
    status = w.HTML()
    for widget, trait in (
        (name, "name"),
        (ai_model, "ai_model_id"),
        (market, "market"),
        (cash, "initial_cash"),
        (tickers, "tickers"),
        (params, "parameters"),
        (description, "description"),
        (instructions, "custom_instructions"),
        (rules, "custom_rules"),
    ):
        w.link((ctl, trait), (widget, "value"))
    buttons = {
        label: w.Button(description=label)
        for label in ("New", "Save", "Share / unshare", "Delete", "Confirm delete", "Cancel")
    }
    buttons["Save"].button_style = "primary"
    buttons["Confirm delete"].button_style = "danger"

    def redraw(*_: Any) -> None:
        frame = pd.DataFrame(ctl.rows)
        table.value = table_html(frame, {"cash": money})
        set_options(picker, ["", *[r["signature"] for r in ctl.rows]], ctl.selected)
        status.value = status_html(ctl)
        buttons["Confirm delete"].layout.display = "" if ctl.pending_delete else "none"
        buttons["Cancel"].layout.display = "" if ctl.pending_delete else "none"

    ctl.observe(redraw, names=["rows", "message", "error", "pending_delete", "selected"])
    on_pick(picker, lambda signature: ctl.select(signature) if signature else ctl.new())
    buttons["New"].on_click(lambda _: ctl.new())
    buttons["Save"].on_click(lambda _: ctl.save())
    buttons["Share / unshare"].on_click(lambda _: ctl.toggle_share())
    buttons["Delete"].on_click(lambda _: ctl.request_delete(ctl.selected))
    buttons["Confirm delete"].on_click(lambda _: ctl.confirm_delete())
    buttons["Cancel"].on_click(lambda _: ctl.cancel_delete())
    redraw()
    form = w.VBox(
        [
            picker,
            name,
            ai_model,
            market,
            cash,
            tickers,
            params,
            description,
            instructions,
            rules,
            w.HBox(list(buttons.values())),
            status,
        ]
    )
    return w.VBox([w.HTML('<div class="ttg-title">Models</div>'), form, table])

"""Admin panel (admins only): users and roles, global settings."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab.errors import ValidationError
from ttg_lab.users import add_user, list_users, set_role
from widgets.common import Controller, status_html, table_html


class AdminController(Controller):
    users: traitlets.List[Any] = traitlets.List()
    settings = traitlets.Dict()
    email = traitlets.Unicode("")
    display_name = traitlets.Unicode("")
    role = traitlets.Unicode("user")
    setting_key = traitlets.Unicode("rules.ceilings")
    setting_value = traitlets.Unicode("{}")

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    @property
    def allowed(self) -> bool:
        return self.lab.user.role == "admin"

    def _guard(self) -> None:
        if not self.allowed:
            raise ValidationError("the admin panel is for admins only")

    def refresh(self) -> None:
        with self.action():
            self._guard()
            self.users = list_users(self.lab.store)
            self.settings = self.lab.rules.settings()

    def change_role(self, email: str, role: str) -> bool:
        with self.action(f"{email} is now {role}"):
            self._guard()
            set_role(self.lab.store, self.lab.user, email, role)
            self.users = list_users(self.lab.store)
        return self.ok

    def add(self) -> bool:
        with self.action():
            self._guard()
            user = add_user(self.lab.store, self.lab.user, self.email, self.display_name, self.role)
            self.message = f"added {user.email} as {user.role}"
            self.users = list_users(self.lab.store)
        return self.ok

    def save_setting(self) -> bool:
        with self.action(f"saved {self.setting_key}"):
            self._guard()
            try:
                value = json.loads(self.setting_value)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"the value must be JSON ({exc.msg})") from None
            self.lab.rules.set_setting(self.setting_key, value)
            self.settings = self.lab.rules.settings()
        return self.ok


def view(ctl: AdminController) -> w.Widget:
    if not ctl.allowed:
        return w.HTML('<div class="ttg-title">Admin</div><div class="ttg-empty">Admins only.</div>')
    users, settings, status = w.HTML(), w.HTML(), w.HTML()
    who = w.Dropdown(description="User", options=[])
    role = w.Dropdown(description="Role", options=["user", "admin"])
    apply_role = w.Button(description="Change role", button_style="warning")
    email, name = w.Text(description="Email"), w.Text(description="Name")
    new_role = w.Dropdown(description="Role", options=["user", "admin"])
    add = w.Button(description="Add user", button_style="primary")
    key = w.Dropdown(
        description="Setting", options=["rules.ceilings", "rules.defaults", "leaderboard.public"]
    )
    value = w.Textarea(description="JSON", layout=w.Layout(width="60%"))
    save = w.Button(description="Save setting", button_style="primary")
    for widget, trait in (
        (email, "email"),
        (name, "display_name"),
        (new_role, "role"),
        (key, "setting_key"),
        (value, "setting_value"),
    ):
        w.link((ctl, trait), (widget, "value"))

    def redraw(*_: Any) -> None:
        users.value = table_html(pd.DataFrame(ctl.users))
        who.options = [u["email"] for u in ctl.users]
        settings.value = table_html(
            pd.DataFrame(
                [{"key": k, "value": json.dumps(v)} for k, v in sorted(ctl.settings.items())]
            )
        )
        status.value = status_html(ctl)

    ctl.observe(redraw, names=["users", "settings", "message", "error"])
    apply_role.on_click(lambda _: ctl.change_role(who.value, role.value))
    add.on_click(lambda _: ctl.add())
    save.on_click(lambda _: ctl.save_setting())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Admin</div>'),
            status,
            users,
            w.HBox([who, role, apply_role]),
            w.HBox([email, name, new_role, add]),
            w.HTML("<b>Global settings</b>"),
            settings,
            key,
            value,
            save,
        ]
    )

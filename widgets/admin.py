"""Admin panel (admins only): users, roles, sign-ups and the allow-list, global settings."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import ValidationError
from ttg_lab.store.access import is_admin
from widgets.common import Controller, set_options, status_html, table_html


class AdminController(Controller):
    """Users, roles, sign-ups, the allow-list and global settings. Every action goes
    through ``lab.users`` / ``lab.rules``, which refuse anyone but an admin."""

    users: traitlets.List[Any] = traitlets.List()
    allow_list: traitlets.List[Any] = traitlets.List()
    settings = traitlets.Dict()
    email = traitlets.Unicode("")
    display_name = traitlets.Unicode("")
    role = traitlets.Unicode("user")
    pattern = traitlets.Unicode("")
    setting_key = traitlets.Unicode("rules.ceilings")
    setting_value = traitlets.Unicode("{}")

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    @property
    def allowed(self) -> bool:
        return is_admin(self.lab.user)

    def _reload(self) -> None:
        self.users = self.lab.users.list().to_dict("records")
        self.allow_list = self.lab.users.allow_list().to_dict("records")
        self.settings = self.lab.settings.all()

    def refresh(self) -> None:
        """Read the users, the allow-list and the settings again."""
        with self.action():
            self._reload()

    def change_role(self, user: str, role: str) -> bool:
        with self.action(f"{user} is now {role}"):
            self.lab.users.set_role(user, role)
            self._reload()
        return self.ok

    def add(self) -> bool:
        with self.action():
            user = self.lab.users.add(self.email, self.display_name, self.role)
            self.message = f"added {user.email} as {user.role}"
            self._reload()
        return self.ok

    def approve(self, user: str) -> bool:
        with self.action(f"{user} is approved"):
            self.lab.users.approve(user, self.role)
            self._reload()
        return self.ok

    def reject(self, user: str) -> bool:
        with self.action(f"{user}'s sign-up is rejected"):
            self.lab.users.reject(user)
            self._reload()
        return self.ok

    def allow(self) -> bool:
        with self.action(f"sign-ups from {self.pattern.strip().lower()} are approved at once"):
            self.lab.users.allow(self.pattern, self.role)
            self._reload()
        return self.ok

    def save_setting(self) -> bool:
        with self.action(f"saved {self.setting_key}"):
            try:
                value = json.loads(self.setting_value)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"the value must be JSON ({exc.msg})") from None
            self.lab.settings.set(self.setting_key, value)
            self.settings = self.lab.settings.all()
        return self.ok


def view(ctl: AdminController) -> w.Widget:
    if not ctl.allowed:
        return w.HTML('<div class="ttg-title">Admin</div><div class="ttg-empty">Admins only.</div>')
    users, settings, status = w.HTML(), w.HTML(), w.HTML()
    who = w.Dropdown(description="User", options=[])
    role = w.Dropdown(description="Role", options=["user", "admin"])
    apply_role = w.Button(description="Change role", button_style="warning")
    approve = w.Button(description="Approve", button_style="success")
    reject = w.Button(description="Reject", button_style="danger")
    allow_list = w.HTML()
    pattern = w.Text(description="Allow", placeholder="name@team.org or @team.org")
    allow = w.Button(description="Allow sign-ups", button_style="primary")
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
        (pattern, "pattern"),
        (value, "setting_value"),
    ):
        w.link((ctl, trait), (widget, "value"))

    def redraw(*_: Any) -> None:
        users.value = table_html(pd.DataFrame(ctl.users))
        set_options(who, [u["username"] or u["email"] for u in ctl.users], who.value)
        allow_list.value = table_html(pd.DataFrame(ctl.allow_list))
        settings.value = table_html(
            pd.DataFrame(
                [{"key": k, "value": json.dumps(v)} for k, v in sorted(ctl.settings.items())]
            )
        )
        status.value = status_html(ctl)

    ctl.observe(redraw, names=["users", "allow_list", "settings", "message", "error"])
    apply_role.on_click(lambda _: ctl.change_role(who.value, role.value))
    approve.on_click(lambda _: ctl.approve(who.value))
    reject.on_click(lambda _: ctl.reject(who.value))
    allow.on_click(lambda _: ctl.allow())
    add.on_click(lambda _: ctl.add())
    save.on_click(lambda _: ctl.save_setting())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Admin</div>'),
            status,
            users,
            w.HBox([who, role, apply_role, approve, reject]),
            w.HBox([email, name, new_role, add]),
            w.HTML("<b>Sign-up allow-list</b> (new users from these are approved at once)"),
            allow_list,
            w.HBox([pattern, allow]),
            w.HTML("<b>Global settings</b>"),
            settings,
            key,
            value,
            save,
        ]
    )

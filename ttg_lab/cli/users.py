"""``ttg-lab users``: users, roles, sign-ups and the allow-list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab import options
from ttg_lab.cli.context import LabContext, LazyChoice, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame

if TYPE_CHECKING:
    pass


@click.group()
def users() -> None:
    """Users, roles, sign-ups and the sign-up allow-list (admins, except sign-up)."""


@users.command("list")
@pass_ctx
def users_list(obj: LabContext) -> None:
    with clear_errors():
        frame = obj.lab().users.list()
        print_frame(frame[["username", "email", "display_name", "role", "approved"]], "Users")


@users.command("signup")
@click.argument("email")
@click.argument("display_name")
@click.option("--username", default=None)
@pass_ctx
def users_signup(obj: LabContext, email: str, display_name: str, username: str | None) -> None:
    """Ask to join: approved at once when allow-listed, else pending an admin."""
    with clear_errors():
        user = obj.lab().users.sign_up(email, display_name, username)
        state = "approved" if user.approved else "waiting for an admin's approval"
        console.print(f"{user.username} ({user.email}): {state}", highlight=False)


@users.command("add")
@click.argument("email")
@click.argument("display_name")
@click.option("--role", type=LazyChoice(lambda: options.ROLES), default="user", show_default=True)
@click.option("--username", default=None)
@pass_ctx
def users_add(
    obj: LabContext, email: str, display_name: str, role: str, username: str | None
) -> None:
    with clear_errors():
        user = obj.lab().users.add(email, display_name, role, username)
        console.print(f"added {user.username} ({user.email}) as {user.role}", highlight=False)


@users.command("approve")
@click.argument("user")
@click.option("--role", type=LazyChoice(lambda: options.ROLES), default=None)
@pass_ctx
def users_approve(obj: LabContext, user: str, role: str | None) -> None:
    with clear_errors():
        approved = obj.lab().users.approve(user, role)
        console.print(f"{approved.username} is approved as {approved.role}", highlight=False)


@users.command("reject")
@click.argument("user")
@pass_ctx
def users_reject(obj: LabContext, user: str) -> None:
    with clear_errors():
        obj.lab().users.reject(user)
        console.print(f"{user}'s sign-up is rejected", highlight=False)


@users.command("role")
@click.argument("user")
@click.argument("role", type=LazyChoice(lambda: options.ROLES))
@pass_ctx
def users_role(obj: LabContext, user: str, role: str) -> None:
    with clear_errors():
        obj.lab().users.set_role(user, role)
        console.print(f"{user} is now {role}", highlight=False)


@users.command("allow")
@click.argument("pattern")
@click.option("--role", type=LazyChoice(lambda: options.ROLES), default="user", show_default=True)
@pass_ctx
def users_allow(obj: LabContext, pattern: str, role: str) -> None:
    """Allow-list an email or a whole @domain: their sign-ups are approved at once."""
    with clear_errors():
        obj.lab().users.allow(pattern, role)
        console.print(f"sign-ups from {pattern} are approved as {role}", highlight=False)


@users.command("db-login")
@click.argument("user")
@click.option("--password", prompt=True, hide_input=True, envvar="TTG_LAB_DB_LOGIN_PASSWORD")
@pass_ctx
def users_db_login(obj: LabContext, user: str, password: str) -> None:
    """PostgreSQL: give USER a login that row-level security limits to their own work."""
    with clear_errors():
        url = obj.lab().users.db_login(user, password)
        from sqlalchemy.engine import make_url

        console.print(
            f"created; connect with {make_url(url).render_as_string(hide_password=True)} "
            "and the password you chose",
            highlight=False,
        )

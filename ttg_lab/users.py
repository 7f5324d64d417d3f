"""Users of the lab: who the lab acts as, sign-up through an admin-approved allow-list,
roles, and PostgreSQL logins for row-level security.

Identity is authenticated where the environment can say it (a PostgreSQL login of the
user's own, JupyterHub's spawner environment) and claimed everywhere else (``--user``,
``user=``, ``TTG_LAB_USER``); only an admin may act on a claim to be someone else.

A fresh store gets one local admin (username ``local``). Anyone else signs up: an email
on the allow-list (exact, or a whole ``@domain``) is approved at once with the listed
role; any other sign-up waits for an admin's approval.
"""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import delete, func, select, text

from ttg_lab.errors import ConfigError, NotFoundError, PermissionDeniedError, ValidationError
from ttg_lab.store.access import is_admin, require_admin
from ttg_lab.store.database import Store
from ttg_lab.store.schema import SignupAllowEntry, User
from ttg_lab.text import refuse_secrets

LOCAL_USER_EMAIL = "local@ttg-lab"
LOCAL_USERNAME = "local"
ROLES: tuple[str, ...] = ("admin", "user")
USER_ENV = "TTG_LAB_USER"
"""Config: the user a lab (and the dashboard) acts as; a claim, like ``--user``."""
HUB_USER_ENV = "JUPYTERHUB_USER"
"""Set by JupyterHub in a user's server: the user the Hub signed in."""
HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
"""Set by JupyterHub beside ``JUPYTERHUB_USER`` in the server it spawns; with it, the
Hub's user is authenticated, without it ``JUPYTERHUB_USER`` is only a claim."""
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,118}$")


def ensure_local_user(store: Store) -> User:
    """The local admin, created on first use."""
    with store.session() as session:
        user = session.scalars(select(User).where(User.email == LOCAL_USER_EMAIL)).first()
        if user is None:
            user = User(
                email=LOCAL_USER_EMAIL,
                username=LOCAL_USERNAME,
                display_name="Local researcher",
                role="admin",
            )
            session.add(user)
            session.flush()
        return user


def find_user(store: Store, name: str) -> User | None:
    """A user by username or email (case-insensitive), or None."""
    key = (name or "").strip().lower()
    with store.session() as session:
        return session.scalars(
            select(User).where((User.username == key) | (func.lower(User.email) == key))
        ).first()


def get_user(store: Store, name: str) -> User:
    user = find_user(store, name)
    if user is None:
        raise NotFoundError(f"no user {name!r}")
    return user


def session_user(store: Store) -> User | None:
    """On PostgreSQL, the user whose database role this connection logged in as."""
    if store.dialect != "postgresql":
        return None
    with store.engine.connect() as conn:
        user_id = conn.execute(text("SELECT ttg_session_user_id()")).scalar()
    if user_id is None:
        return None
    with store.session() as session:
        return session.get(User, user_id)


def hub_user() -> str | None:
    """The user JupyterHub authenticated for this server: ``JUPYTERHUB_USER`` when the
    Hub's API token is in the environment too (both are set by the Hub's spawner)."""
    name = os.environ.get(HUB_USER_ENV, "").strip()
    return name if name and os.environ.get(HUB_TOKEN_ENV, "").strip() else None


def _names(user: User) -> set[str]:
    return {user.username or "", user.email.lower()}


def _approved(user: User) -> User:
    if not user.approved:
        raise PermissionDeniedError(
            f"{user.username} has signed up and is waiting for an admin's approval"
        )
    return user


def _find_or_sign_up(store: Store, name: str) -> User:
    """The user called ``name``; an unknown name (a JupyterHub user new to the lab) signs
    up, approved when allow-listed."""
    if name.lower() == LOCAL_USERNAME:
        return ensure_local_user(store)
    user = find_user(store, name)
    if user is None:
        email = name if "@" in name else f"{name}@jupyterhub"
        user = sign_up(store, email, name, username=None if "@" in name else name)
    return user


def resolve_user(store: Store, name: str | None = None) -> User:
    """The user a lab acts as.

    Who the lab *is* comes from what authenticates: on PostgreSQL a user's own login is
    that user, whatever else is named; under JupyterHub (see :func:`hub_user`) the Hub's
    user; otherwise the local admin of this machine. A claim to act as someone else
    (``name``, i.e. ``--user`` or ``user=``; else ``JUPYTERHUB_USER`` when the Hub did
    not set it; else ``TTG_LAB_USER``) is granted only to an approved admin.
    An unknown name signs up (approved when allow-listed); a user still waiting for
    approval is refused with a message that says so.
    """
    hub = hub_user()
    claims = (name, None if hub else os.environ.get(HUB_USER_ENV), os.environ.get(USER_ENV))
    claim = next((c.strip() for c in claims if c and c.strip()), None)
    by_connection = session_user(store)
    if by_connection is not None:
        for wanted in (claim, hub):
            if wanted and wanted.lower() not in _names(by_connection):
                raise ConfigError(
                    f"this database connection belongs to {by_connection.username}, not {wanted}"
                )
        return by_connection
    if hub is not None:
        if hub.lower() in (LOCAL_USERNAME, LOCAL_USER_EMAIL):
            raise ConfigError(f"the JupyterHub user {hub!r} has the name of the lab's local admin")
        me, how = _approved(_find_or_sign_up(store, hub)), "signed in through JupyterHub"
    else:
        me, how = ensure_local_user(store), "this machine's user"
    if claim is None or claim.lower() in _names(me):
        return me
    if not is_admin(me):
        raise PermissionDeniedError(
            f"acting as {claim} needs an admin; {me.username} ({how}) is a {me.role}"
        )
    return _approved(_find_or_sign_up(store, claim))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not EMAIL.match(email):
        raise ValidationError(f"not an email address: {email!r}")
    return email


def _username_for(session: Any, email: str, wanted: str | None) -> str:
    """``wanted`` when valid and free; else a free name made from the email."""
    if wanted is not None:
        wanted = wanted.strip().lower()
        if not USERNAME.match(wanted):
            raise ValidationError(
                f"username {wanted!r} must be 1-64 lower-case letters, digits, '.', '_' or '-'"
            )
        if session.scalars(select(User).where(User.username == wanted)).first():
            raise ValidationError(f"the username {wanted} is taken")
        return wanted
    base = re.sub(r"[^a-z0-9._-]+", "-", email.split("@")[0]).strip("-._")[:56] or "user"
    name, n = base, 1
    while session.scalars(select(User).where(User.username == name)).first():
        n += 1
        name = f"{base}{n}"
    return name


def _allow_listed(session: Any, email: str) -> str | None:
    """The role an allow-list entry grants ``email``, or None."""
    domain = "@" + email.split("@")[1]
    entry = session.scalars(
        select(SignupAllowEntry).where(SignupAllowEntry.pattern.in_([email, domain]))
    ).first()
    return entry.role if entry else None


def sign_up(store: Store, email: str, display_name: str, username: str | None = None) -> User:
    """Ask to join: approved at once when allow-listed, else pending an admin."""
    return _insert_user(store, email, display_name, username, role=None)


def _insert_user(
    store: Store, email: str, display_name: str, username: str | None, role: str | None
) -> User:
    """A new user, in one transaction: approved with ``role`` when one is given (an admin
    adding them), else with the allow-list's role, else pending."""
    refuse_secrets({"email": email, "name": display_name, "username": username or ""}, "user")
    email = _clean_email(email)
    if not (display_name or "").strip():
        raise ValidationError("a user needs a display name")
    with store.session() as session:
        if session.scalars(select(User).where(User.email == email)).first():
            raise ValidationError(f"{email} has signed up already")
        role = role or _allow_listed(session, email)
        user = User(
            email=email,
            username=_username_for(session, email, username),
            display_name=display_name.strip()[:200],
            role=role or "user",
            approved=role is not None,
        )
        session.add(user)
        session.flush()
        return user


def list_users(store: Store, actor: User) -> list[dict[str, object]]:
    """Every user with role and approval (admins only)."""
    require_admin(actor, "listing users")
    with store.session() as session:
        return [
            {
                "id": u.id,
                "username": u.username,
                "email": u.email,
                "display_name": u.display_name,
                "role": u.role,
                "approved": u.approved,
                "db_role": u.db_role,
                "created_at": u.created_at,
            }
            for u in session.scalars(select(User).order_by(User.id))
        ]


def add_user(
    store: Store,
    actor: User,
    email: str,
    display_name: str,
    role: str = "user",
    username: str | None = None,
) -> User:
    """An admin adds (and so approves) a user."""
    require_admin(actor, "adding users")
    _check_role(role)
    return _insert_user(store, email, display_name, username, role)


def approve(store: Store, actor: User, name: str, role: str | None = None) -> User:
    """An admin approves a pending sign-up (optionally with a role)."""
    require_admin(actor, "approving sign-ups")
    if role is not None:
        _check_role(role)
    with store.session() as session:
        user = session.get(User, get_user(store, name).id)
        assert user is not None
        user.approved = True
        if role is not None:
            user.role = role
        session.flush()
        return user


def reject(store: Store, actor: User, name: str) -> None:
    """An admin turns down a pending sign-up (approved users are not deleted here)."""
    require_admin(actor, "rejecting sign-ups")
    user = get_user(store, name)
    if user.approved:
        raise ValidationError(f"{user.username} is approved; change their role instead")
    with store.session() as session:
        session.execute(delete(User).where(User.id == user.id))


def set_role(store: Store, actor: User, name: str, role: str) -> None:
    """An admin changes a user's role; the last admin cannot be demoted."""
    require_admin(actor, "changing roles")
    _check_role(role)
    with store.session() as session:
        user = session.get(User, get_user(store, name).id)
        assert user is not None
        if user.role == "admin" and role != "admin":
            admins = session.scalar(
                select(func.count()).select_from(User).where(User.role == "admin", User.approved)
            )
            if (admins or 0) <= 1:
                raise ValidationError("cannot demote the last admin")
        user.role = role


def allow_signups(store: Store, actor: User, pattern: str, role: str = "user") -> None:
    """An admin allow-lists an email, or a whole domain written ``@team.org``."""
    require_admin(actor, "editing the sign-up allow-list")
    _check_role(role)
    refuse_secrets({"pattern": pattern}, "allow-list entry")
    pattern = (pattern or "").strip().lower()
    if not (EMAIL.match(pattern) or re.match(r"^@[^@\s]{1,118}$", pattern)):
        raise ValidationError(f"allow-list entries are emails or '@domain', got {pattern!r}")
    with store.session() as session:
        row = session.scalars(
            select(SignupAllowEntry).where(SignupAllowEntry.pattern == pattern)
        ).first()
        if row is None:
            session.add(SignupAllowEntry(pattern=pattern, role=role, added_by=actor.id))
        else:
            row.role = role


def disallow_signups(store: Store, actor: User, pattern: str) -> None:
    require_admin(actor, "editing the sign-up allow-list")
    with store.session() as session:
        session.execute(
            delete(SignupAllowEntry).where(SignupAllowEntry.pattern == pattern.strip().lower())
        )


def allow_list(store: Store, actor: User) -> list[dict[str, object]]:
    require_admin(actor, "reading the sign-up allow-list")
    with store.session() as session:
        return [
            {"pattern": e.pattern, "role": e.role, "created_at": e.created_at}
            for e in session.scalars(select(SignupAllowEntry).order_by(SignupAllowEntry.id))
        ]


def db_role_name(user: User) -> str:
    """The PostgreSQL role of a user: ``ttg_`` and their username, letters/digits/_ only."""
    return "ttg_" + re.sub(r"[^a-z0-9_]", "_", (user.username or str(user.id)).lower())[:59]


def create_db_login(store: Store, actor: User, name: str, password: str) -> str:
    """An admin gives user ``name`` their own PostgreSQL login (row-level security then
    limits it to their work) and gets back its URL. The password is not stored."""
    require_admin(actor, "creating database logins")
    if store.dialect != "postgresql":
        raise ConfigError("database logins need PostgreSQL; SQLite has no users")
    if len(password or "") < 8:
        raise ValidationError("a database password needs at least 8 characters")
    from psycopg import sql

    user = get_user(store, name)
    if not user.approved:
        raise ValidationError(f"{user.username} is not approved yet")
    role = db_role_name(user)
    statements = [
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) "
            "THEN CREATE ROLE {role} LOGIN; END IF; END $$"
        ).format(name=sql.Literal(role), role=sql.Identifier(role)),
        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        ),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(str(store.engine.url.database)), sql.Identifier(role)
        ),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(role)
        ),
        sql.SQL("REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {}").format(
            sql.Identifier(role)
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            sql.Identifier(role)
        ),
    ]
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("UPDATE users SET db_role = %s WHERE id = %s", (role, user.id))
        cursor.close()
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    return store.engine.url.set(username=role, password=password).render_as_string(
        hide_password=False
    )

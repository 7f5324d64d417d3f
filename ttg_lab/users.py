"""Users of the lab. A fresh store gets one local user who is an admin."""

from __future__ import annotations

from sqlalchemy import select

from ttg_lab.errors import NotFoundError
from ttg_lab.store.database import Store
from ttg_lab.store.schema import User

LOCAL_USER_EMAIL = "local@ttg-lab"
ROLES: tuple[str, ...] = ("admin", "user")


def ensure_local_user(store: Store) -> User:
    """The local admin, created on first use."""
    with store.session() as session:
        user = session.scalars(select(User).where(User.email == LOCAL_USER_EMAIL)).first()
        if user is None:
            user = User(email=LOCAL_USER_EMAIL, display_name="Local researcher", role="admin")
            session.add(user)
            session.flush()
        return user


def get_user(store: Store, email: str) -> User:
    with store.session() as session:
        user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        raise NotFoundError(f"no user with email {email!r}")
    return user

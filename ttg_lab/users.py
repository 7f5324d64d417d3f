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


def _require_admin(actor: User) -> None:
    from ttg_lab.errors import ValidationError

    if actor.role != "admin":
        raise ValidationError("only an admin can manage users")


def list_users(store: Store) -> list[dict[str, object]]:
    """Every user with role and approval."""
    with store.session() as session:
        return [
            {
                "id": u.id,
                "email": u.email,
                "display_name": u.display_name,
                "role": u.role,
                "approved": u.approved,
                "created_at": u.created_at,
            }
            for u in session.scalars(select(User).order_by(User.id))
        ]


def add_user(store: Store, actor: User, email: str, display_name: str, role: str = "user") -> User:
    """An admin adds (and so approves) a user."""
    from ttg_lab.errors import ValidationError

    _require_admin(actor)
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValidationError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    if not (display_name or "").strip():
        raise ValidationError("a user needs a display name")
    with store.session() as session:
        if session.scalars(select(User).where(User.email == email)).first():
            raise ValidationError(f"a user with email {email} exists already")
        user = User(email=email, display_name=display_name.strip(), role=role, approved=True)
        session.add(user)
        session.flush()
        return user


def set_role(store: Store, actor: User, email: str, role: str) -> None:
    """An admin changes a user's role; the last admin cannot be demoted."""
    from ttg_lab.errors import ValidationError

    _require_admin(actor)
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    with store.session() as session:
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None:
            raise NotFoundError(f"no user with email {email!r}")
        if user.role == "admin" and role != "admin":
            admins = session.scalars(select(User).where(User.role == "admin")).all()
            if len(admins) <= 1:
                raise ValidationError("cannot demote the last admin")
        user.role = role

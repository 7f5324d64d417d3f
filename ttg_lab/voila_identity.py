"""How the dashboard's Voila server knows a page: Jupyter's own identity provider, plus
the ``_xsrf`` cookie that lets a closed page end its kernel.

When a dashboard page is closed or reloaded, Voila's page script posts
``/voila/api/shutdown/<kernel>`` with the ``_xsrf`` token it reads from the page's
``_xsrf`` cookie. Voila serves its page without ever issuing that cookie (Jupyter sets
it only on pages rendered with the request's template namespace), so every shutdown was
refused (``403 ... '_xsrf' argument missing``) and the kernel of every closed page kept
running. Issuing the cookie with the page keeps the XSRF check and lets the shutdown in.
``ttg-lab dashboard`` selects this class with ``--Voila.identity_provider_class``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider, User
from tornado.web import RequestHandler


class DashboardIdentityProvider(PasswordIdentityProvider):
    """Jupyter's password/token identity provider that also issues the ``_xsrf`` cookie
    on every page a browser loads."""

    async def get_user(self, handler: RequestHandler) -> User | None:
        found: Any = super().get_user(handler)
        user: User | None = await found if hasattr(found, "__await__") else found
        if user is not None and handler.request.method == "GET":
            # prepare() sets the same user right after; tornado's xsrf_token reads it
            handler.current_user = user
            handler.xsrf_token  # noqa: B018  (sets the cookie when the browser has none)
        return user

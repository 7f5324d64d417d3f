"""Third-party packages that do expensive work at import, loaded on first use instead.

``jsonschema``'s format checks import ``rfc3987_syntax`` whenever it is installed (Jupyter's
``jsonschema[format-nongpl]`` installs it), and that package compiles its lark grammars at
import: about 1 s. The MCP SDK imports ``jsonschema``, so every chat-path process paid it,
although no schema of ours checks the ``iri`` formats it serves. Rather than uninstall it
(Jupyter wants it) or patch ``jsonschema``, :func:`defer_rfc3987_syntax` registers a
stand-in module that imports the real package the first time something uses it: the
``iri`` / ``iri-reference`` checks stay registered and judge exactly as before, and only a
process that runs one pays for the grammars.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

RFC3987_SYNTAX = "rfc3987_syntax"


class DeferredModule(ModuleType):
    """Stands in for a package in ``sys.modules`` until first use, then hands over to it.

    ``jsonschema`` does ``from rfc3987_syntax import is_valid_syntax`` at import, so that
    name is offered as a function that loads the real package when called; any other
    attribute loads the real package at once. Submodules import as usual (``__path__``).
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec.name)
        self.__spec__ = spec
        self.__path__ = list(spec.submodule_search_locations or [])
        self._real: ModuleType | None = None
        self._lock = threading.Lock()

    def _load(self) -> ModuleType:
        """The real package, imported (once) in place of this stand-in."""
        with self._lock:
            if self._real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                self._real = importlib.import_module(self.__name__)
            return self._real

    def is_valid_syntax(self, term: str, value: str) -> bool:
        """``rfc3987_syntax.is_valid_syntax``, loading the grammars on the first call."""
        return bool(self._load().is_valid_syntax(term, value))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._load(), name)


def defer_rfc3987_syntax() -> None:
    """Register the stand-in for ``rfc3987_syntax`` (when installed and not yet imported)."""
    if RFC3987_SYNTAX in sys.modules:
        return
    spec = importlib.util.find_spec(RFC3987_SYNTAX)
    if spec is not None:
        sys.modules[RFC3987_SYNTAX] = DeferredModule(spec)

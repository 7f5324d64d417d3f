"""Third-party packages whose ``__init__`` does costly work we do not use, run on first use.

Some packages on the chat path pay at import for things no run of ours touches:

- ``rfc3987_syntax`` compiles its lark grammars (about 1 s). ``jsonschema``'s format checks
  import it whenever it is installed (Jupyter's ``jsonschema[format-nongpl]`` installs it),
  and the MCP SDK imports ``jsonschema``; no schema of ours checks the ``iri`` formats.
- ``langsmith.types`` imports some 170 generated API models (about 0.2 s); LangChain's
  tracer imports one small submodule of it.
- ``langgraph_sdk`` loads its HTTP and websocket client (about 0.1 s); LangGraph's runtime
  imports only its auth types.

Rather than uninstall them (Jupyter wants the first) or patch their importers, a finder
at the front of ``sys.meta_path`` hands out a stand-in for each such package. Its
submodules import as usual; the package's own ``__init__`` runs the first time anything
reads an attribute of it, and from then on the real package is in ``sys.modules``. Names
an importer takes at import time (``from rfc3987_syntax import is_valid_syntax``) are
offered as functions that load the package when called, so ``jsonschema`` still registers
its ``iri`` checks, and they judge exactly as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Deferral:
    """A package whose ``__init__`` runs on first use; ``calls`` are functions importers
    take from it at import time, which load it when first called."""

    package: str
    calls: tuple[str, ...] = ()


DEFERRALS = (
    Deferral("rfc3987_syntax", calls=("is_valid_syntax",)),
    Deferral("langsmith.types"),
    Deferral("langgraph_sdk"),
)

_loading: set[str] = set()
"""Packages being imported for real: the finder steps aside for them."""


class DeferredModule(ModuleType):
    """Stands in for a package in ``sys.modules`` until first use, then hands over to it."""

    def __init__(self, deferral: Deferral) -> None:
        super().__init__(deferral.package)
        self._real: ModuleType | None = None
        self._lock = threading.Lock()
        for name in deferral.calls:
            setattr(self, name, self._calling(name))

    def _load(self) -> ModuleType:
        """The real package, imported (once) in place of this stand-in."""
        with self._lock:
            if self._real is None:
                name = self.__name__
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                _loading.add(name)
                try:
                    self._real = importlib.import_module(name)
                finally:
                    _loading.discard(name)
            return self._real

    def _calling(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._load(), name)(*args, **kwargs)

        call.__name__ = name
        return call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_real", "_lock"):
            raise AttributeError(name)
        return getattr(self._load(), name)


class DeferredLoader(Loader):
    """Creates a package's stand-in; running it does nothing (the real ``__init__`` runs
    when the stand-in is first used)."""

    def __init__(self, deferral: Deferral) -> None:
        self.deferral = deferral

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return DeferredModule(self.deferral)

    def exec_module(self, module: ModuleType) -> None:
        return None


class DeferredFinder(MetaPathFinder):
    """Finds the stand-in of each deferred package (the real one while it loads)."""

    def __init__(self, deferrals: Sequence[Deferral]) -> None:
        self.deferrals = {deferral.package: deferral for deferral in deferrals}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        deferral = self.deferrals.get(fullname)
        if deferral is None or fullname in _loading:
            return None
        _loading.add(fullname)
        try:
            real = importlib.util.find_spec(fullname)
        finally:
            _loading.discard(fullname)
        if real is None or real.submodule_search_locations is None:
            return None  # not installed, or not a package: nothing to defer
        spec = ModuleSpec(fullname, DeferredLoader(deferral), origin=real.origin, is_package=True)
        spec.submodule_search_locations = list(real.submodule_search_locations)
        return spec


def defer_costly_packages(deferrals: Sequence[Deferral] = DEFERRALS) -> None:
    """Put the finder of ``deferrals`` first on ``sys.meta_path`` (once per process; it
    costs nothing until one of them is imported)."""
    if not any(isinstance(finder, DeferredFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeferredFinder(deferrals))

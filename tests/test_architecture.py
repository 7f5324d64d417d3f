"""The layers of ARCHITECTURE.md hold in the code: imports point down, never in a cycle.

The layer table is read from ARCHITECTURE.md (its one definition). The import graph of
``ttg_lab`` is built with ``ast`` from every import statement: at module level, inside
functions (lazy imports count like any other) and under ``if TYPE_CHECKING:``. Importing
``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; those are not counted as edges
of every importer (they are modules of the graph themselves, checked like the others, and
kept light: the root loads the lab only on first use).

The faces outside the package (``widgets/``, ``notebooks/``) may import only the public
API; the internals they still import are listed below, to be removed (Phase B of Step 2:
the ``ttg_lab.options`` module and the run-centred API), and a listed import that is gone
fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ttg_lab"

PUBLIC = frozenset({"ttg_lab", "ttg_lab.options", "ttg_lab.charts", "ttg_lab.reports"})
"""What a face outside the package may import: the public API, the declared options, and
the charts and reports of stored runs."""

WIDGET_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # display formats and secret masking: base utilities with no public home yet
        ("widgets.analyst", "ttg_lab.secrets"),
        ("widgets.common", "ttg_lab.secrets"),
        ("widgets.leaderboard", "ttg_lab.formatting"),
        ("widgets.models", "ttg_lab.formatting"),
        ("widgets.monitor", "ttg_lab.formatting"),
        ("widgets.performance", "ttg_lab.formatting"),
        ("widgets.reasoning", "ttg_lab.formatting"),
        ("widgets.rules", "ttg_lab.formatting"),
        # who is an admin: the Lab offers no typed question for it yet
        ("widgets.admin", "ttg_lab.store.access"),
        ("widgets.app", "ttg_lab.store.access"),
        # types of what the lab hands the panels (run events, service statuses)
        ("widgets.monitor", "ttg_lab.engine.events"),
        ("widgets.run_control", "ttg_lab.engine.events"),
        ("widgets.services", "ttg_lab.mcp_services.manager"),
        # metric units and verdicts, and the reasoning search that queries the store itself
        ("widgets.performance", "ttg_lab.leaderboard"),
        ("widgets.performance", "ttg_lab.metrics.reference"),
        ("widgets.reasoning", "ttg_lab.engine.stored_reasoning"),
        ("widgets.reasoning", "ttg_lab.store.schema"),
        # the data panel: who is an admin, secret masking (as the other panels)
        ("widgets.data", "ttg_lab.store.access"),
        ("widgets.data", "ttg_lab.secrets"),
    }
)
"""Internals the widgets still import, each group for the reason noted (the list only shrinks)."""

NOTEBOOK_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()
"""None: the shipped notebooks import only the public API, and this stays empty."""


# -- the layer table ---------------------------------------------------------------------
@dataclass(frozen=True)
class Layers:
    """The layers top to bottom, and which layer each table entry (a module's path, or a
    package's folder ending in ``/``) belongs to."""

    order: tuple[str, ...]
    entries: Mapping[str, str]

    def of(self, path: str) -> list[str]:
        """The layers whose entries place ``path`` (a file path relative to the root)."""
        return sorted(
            {
                layer
                for entry, layer in self.entries.items()
                if path == entry or (entry.endswith("/") and path.startswith(entry))
            }
        )


def read_layers(markdown: str) -> Layers:
    """The layer table of ARCHITECTURE.md: the first table whose header starts with
    ``layer``; each row names its layer, then the paths (in backticks) it holds."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    start = next(i for i, row in enumerate(rows) if _cells(row)[0] == "layer")
    order: list[str] = []
    entries: dict[str, str] = {}
    for row in rows[start + 2 :]:
        cells = _cells(row)
        if len(cells) < 2:
            break
        order.append(cells[0])
        for entry in re.findall(r"`([^`]+)`", cells[1]):
            assert entry not in entries, f"{entry} is in two layers of the table"
            entries[entry] = cells[0]
    return Layers(tuple(order), entries)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


# -- the import graph --------------------------------------------------------------------
def modules_under(root: Path, package: str) -> dict[str, str]:
    """Module name -> path (relative to ``root``) of every module of ``package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root)
        parts = rel.with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = rel.as_posix()
    return found


def imports_in(source: str, module: str, is_package: bool, known: Iterable[str]) -> dict[str, int]:
    """Modules of ``known`` that ``source`` (module ``module``) imports, with the line of
    the first import of each: every import statement, wherever it is."""
    known = set(known)
    targets: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            targets.setdefault(name, line)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base, node.lineno)
    return targets


def import_graph(root: Path, package: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The modules of ``package`` (name -> path) and, per module, what it imports of it."""
    modules = modules_under(root, package)
    graph = {
        name: imports_in(
            (root / path).read_text(encoding="utf-8"),
            name,
            path.endswith("__init__.py"),
            modules,
        )
        for name, path in modules.items()
    }
    return modules, graph


# -- the checks --------------------------------------------------------------------------
def cycles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """Every set of modules that import each other in a circle (Tarjan's strongly
    connected components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_problems(
    modules: Mapping[str, str], graph: Mapping[str, Mapping[str, int]], layers: Layers
) -> list[str]:
    """Everything that breaks the layers: a module in no layer (or in two), a table entry
    that places no module, an import that points up, and every import cycle."""
    problems = []
    placed: dict[str, str] = {}
    for name, path in sorted(modules.items()):
        owners = layers.of(path)
        if len(owners) != 1:
            where = "no layer" if not owners else f"layers {', '.join(owners)}"
            problems.append(f"{path} is in {where} of ARCHITECTURE.md")
        else:
            placed[name] = owners[0]
    for entry in sorted(layers.entries):
        if not any(path == entry or path.startswith(entry) for path in modules.values()):
            problems.append(f"ARCHITECTURE.md places {entry}, which is not a module or package")
    rank = {layer: i for i, layer in enumerate(layers.order)}
    for name, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            if name in placed and target in placed and rank[placed[target]] < rank[placed[name]]:
                problems.append(
                    f"{modules[name]}:{line} imports {target}: up from {placed[name]} "
                    f"to {placed[target]}"
                )
    for component in cycles(graph):
        problems.append(f"import cycle: {' <-> '.join(component)}")
    return problems


def face_imports(sources: Mapping[str, str], known: Iterable[str]) -> set[tuple[str, str]]:
    """(face, ttg_lab module) for every import of the package in the faces' sources."""
    known = set(known)
    return {
        (face, target)
        for face, source in sources.items()
        for target in imports_in(source, face, False, known)
    }


def face_problems(
    imports: set[tuple[str, str]], exceptions: frozenset[tuple[str, str]], what: str
) -> list[str]:
    """Imports of internals not listed as exceptions, and listed exceptions now gone."""
    internal = {(face, target) for face, target in imports if target not in PUBLIC}
    return [
        *(
            f"{face} imports {target}: {what} may import only {sorted(PUBLIC)}"
            for face, target in sorted(internal - exceptions)
        ),
        *(
            f"{face} no longer imports {target}: drop it from the exceptions"
            for face, target in sorted(exceptions - internal)
        ),
    ]


# -- the tests ---------------------------------------------------------------------------
def layers() -> Layers:
    return read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_import_of_ttg_lab_points_down_the_layers_of_architecture_md() -> None:
    table = layers()
    assert table.order[0] == "faces" and table.order[-1] == "base"
    modules, graph = import_graph(ROOT, PACKAGE)
    assert len(modules) > 100 and sum(map(len, graph.values())) > 300  # the real package
    assert layer_problems(modules, graph, table) == []


def test_the_widgets_import_only_the_public_api_but_for_the_listed_internals() -> None:
    known = modules_under(ROOT, PACKAGE)
    sources = {
        "widgets." + path.stem if path.stem != "__init__" else "widgets": path.read_text()
        for path in sorted((ROOT / "widgets").glob("*.py"))
    }
    assert face_problems(face_imports(sources, known), WIDGET_EXCEPTIONS, "a widget") == []


def test_the_notebooks_import_only_the_public_api_but_for_the_listed_internals() -> None:
    known = modules_under(ROOT, PACKAGE)
    sources = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c["source"] for c in cells if c["cell_type"] == "code"]
        sources[path.stem] = "\n".join("".join(s) if isinstance(s, list) else s for s in code)
    assert face_problems(face_imports(sources, known), NOTEBOOK_EXCEPTIONS, "a notebook") == []


# -- the checker itself can fail ---------------------------------------------------------
TABLE = """
| layer | packages / modules | owns |
|---|---|---|
| top | `p/top.py`, `p/face/` | the face |
| bottom | `p/low.py` | the base |
"""


def test_the_checker_reports_an_upward_import_a_cycle_an_unplaced_module_and_a_stale_entry() -> (
    None
):
    table = read_layers(TABLE + "| extra | `p/gone.py` | nothing |\n")
    assert table.order == ("top", "bottom", "extra")
    modules = {
        "p.top": "p/top.py",
        "p.face.panel": "p/face/panel.py",
        "p.low": "p/low.py",
        "p.stray": "p/stray.py",
    }
    graph = {
        "p.top": {"p.low": 3},  # down: fine
        "p.face.panel": {"p.top": 1},  # same layer: fine
        "p.low": {"p.top": 7},  # up, and a cycle with p.top
        "p.stray": {},
    }
    assert layer_problems(modules, graph, table) == [
        "p/stray.py is in no layer of ARCHITECTURE.md",
        "ARCHITECTURE.md places p/gone.py, which is not a module or package",
        "p/low.py:7 imports p.top: up from bottom to top",
        "import cycle: p.low <-> p.top",
    ]
    graph["p.low"] = {}
    modules.pop("p.stray")
    table = read_layers(TABLE)
    assert layer_problems(modules, graph, table) == []


def test_the_import_collector_sees_lazy_type_checking_and_relative_imports() -> None:
    known = ["p", "p.a", "p.b", "p.c", "p.d", "p.sub", "p.sub.e"]
    source = """
from typing import TYPE_CHECKING
import os
from p import a
if TYPE_CHECKING:
    from p.b import Thing
def lazy():
    import p.c
    from .d import helper
from p.sub import missing_name
"""
    assert imports_in(source, "p.mod", False, known) == {
        "p.a": 4,
        "p.b": 6,
        "p.c": 8,
        "p.d": 9,
        "p.sub": 10,
    }
    assert cycles({"x": {"y": 1}, "y": {"z": 1}, "z": {"x": 1}, "w": {"w": 1}}) == [
        ["w"],
        ["x", "y", "z"],
    ]


def test_a_face_importing_an_unlisted_internal_or_dropping_a_listed_one_is_reported() -> None:
    imports = {("widgets.x", "ttg_lab"), ("widgets.x", "ttg_lab.engine.loop")}
    exceptions = frozenset({("widgets.y", "ttg_lab.errors")})
    assert face_problems(imports, exceptions, "a widget") == [
        "widgets.x imports ttg_lab.engine.loop: a widget may import only "
        "['ttg_lab', 'ttg_lab.charts', 'ttg_lab.options', 'ttg_lab.reports']",
        "widgets.y no longer imports ttg_lab.errors: drop it from the exceptions",
    ]

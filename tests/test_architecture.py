"""The house's floors and arrows, read from the code's imports (deferred ones included).

Floors, bottom up: ``connectors`` (applications, plain Python), ``flows`` (the engine), then
the hosts ``portal`` and ``agent``. An arrow may only point down, and no module may reach
itself again through others: a circle means two modules that cannot be understood, tested
or changed one at a time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connectors", "flows", "portal", "agent", "uikit")
# What each floor may import from the project (itself included).
MAY_IMPORT = {
    "connectors": {"connectors"},
    "flows": {"connectors", "flows"},
    "portal": {"connectors", "flows", "portal"},
    "agent": {"connectors", "flows", "agent"},
    # Templates and static files both hosts list: it stands on nothing of the project.
    "uikit": {"uikit"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its file (functions included)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    resolved = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_reaches_itself_again_through_its_imports():
    assert _circles(_graph()) == []


@pytest.mark.parametrize("floor", PACKAGES)
def test_each_floor_imports_only_the_floors_below_it(floor):
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in _graph().items()
        if name.split(".")[0] == floor
        for target in targets
        if target.split(".")[0] not in MAY_IMPORT[floor]
    )
    assert upward == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The API package is the top of the house: the URL root of /api/v1/, personal tokens, their
# authentication and the error format. Tenancy, the vault and processflows hang their API
# views below it, so nothing but the project's URL root (and settings, by dotted path) may
# point up at it.
MAY_IMPORT_PORTAL_API = {"portal.urls", "portal.settings"}


def test_nothing_outside_the_api_package_imports_it():
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in _graph().items()
        if not (name == "portal.api" or name.startswith("portal.api."))
        and name not in MAY_IMPORT_PORTAL_API
        for target in targets
        if target == "portal.api" or target.startswith("portal.api.")
    )
    assert upward == []


# The shared UI (uikit) is listed by both Django projects, so its templates may name nothing
# of either: no URL names (each host passes its URLs in), no template of theirs.
def test_the_shared_ui_names_no_url_and_no_template_of_either_host():
    naming = sorted(
        f"{path.relative_to(ROOT)}: {tag}"
        for path in (ROOT / "uikit").rglob("*.html")
        for tag in re.findall(r"{%\s*(?:url|include|extends)\s[^%]*%}", path.read_text())
        if not re.search(r"""(?:include|extends)\s+["']uikit/""", tag)
    )
    assert naming == []


def test_the_agent_reads_no_template_or_static_file_of_the_portal():
    agent_settings = (ROOT / "agent" / "settings.py").read_text()
    assert "templates" not in re.findall(r'"DIRS":\s*\[([^\]]*)\]', agent_settings)[0]
    assert "STATICFILES_DIRS" not in agent_settings
    referenced = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "agent").rglob("*.html")
        for name in re.findall(
            r"""{%\s*(?:include|extends|static)\s+["']([^"']+)""", path.read_text()
        )
        if name.split("/")[0] not in ("agent", "uikit")
    )
    assert referenced == []

"""The house rule, checked on the source: each level imports only from the levels below it, and no module
imports itself back through others (no circles). Imports inside functions count too: a deferred import is
still a dependency. See docs/architecture.md."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "evalhub"

# The level table, written once. A module may import from its own level's package and from lower levels.
LEVELS = {
    "config": -1, "extensions": -1,  # settings and the Flask extension objects: below everything
    "core": 0,
    "registry": 1,
    "procurement": 2,
    "review": 3,
    "results": 3.5,    # the 闭环: findings, rectification and the results application read accepted reviews
    "supervision": 4,  # inspections read engagements and reviews
    "credit": 5,       # the annual rating counts what supervision found
    "screening": 6,    # screens uploads (a review hook) and opens inspections
    "integrity": 6.5,  # collusion checks and red flags read procurement, review, supervision, credit and screening
    # the entry points: they gather every domain
    "public": 7, "api": 7, "cli": 7, "dashboard": 7, "demo": 7, "tasks": 7, "": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every evalhub module and the evalhub modules it imports (resolved to modules, not names)."""
    sources = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, path in sources.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                # "from evalhub.core import audit" imports the module evalhub.core.audit
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in sources and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in sources and target != module and target.startswith("evalhub"):
                    graph[module].add(target)
    return graph


def _level(module: str) -> tuple[str, int]:
    top = module.split(".")[1] if "." in module else ""
    assert top in LEVELS, f"{module}: package {top!r} has no level in tests/test_layers.py"
    return top, LEVELS[top]


def test_no_module_imports_a_higher_level():
    upward = []
    for module, targets in _imports().items():
        top, level = _level(module)
        for target in targets:
            other, other_level = _level(target)
            if other_level > level or (other_level == level and other != top and level < 7):
                upward.append(f"{module} → {target} ({top} is level {level}, {other} is level {other_level})")
    assert not upward, "imports from a higher level (register a hook instead):\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    graph = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in circles)


def test_the_demo_is_imported_only_by_the_cli():
    importers = {m for m, targets in _imports().items()
                 if any(t == "evalhub.demo" or t.startswith("evalhub.demo.") for t in targets) and not m.startswith("evalhub.demo")}
    assert importers <= {"evalhub.cli"}, f"the demo package is for the CLI, tests and bench only: {sorted(importers)}"


def test_the_level_table_catches_an_upward_import(tmp_path, monkeypatch):
    """The guard itself can fail: a core module importing a domain is reported."""
    fake = tmp_path / "evalhub"
    (fake / "core").mkdir(parents=True)
    (fake / "registry").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "registry" / "__init__.py").write_text("")
    (fake / "registry" / "models.py").write_text("from evalhub.core import spine\n")
    (fake / "core" / "spine.py").write_text("def f():\n    from evalhub.registry.models import X\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake, raising=False)
    globals()["PACKAGE"] = fake
    try:
        graph = _imports()
        assert "evalhub.registry.models" in graph["evalhub.core.spine"]
        try:
            test_no_import_circles()
        except AssertionError as exc:
            assert "evalhub.core.spine" in str(exc)
        else:
            raise AssertionError("the circle was not reported")
    finally:
        globals()["PACKAGE"] = Path(__file__).resolve().parent.parent / "evalhub"

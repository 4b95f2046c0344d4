"""The package's folders by concern import each other without a cycle, and each module stays
small enough to read: docs/development.md's layout table, kept true."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("serve_app", "deployments")


def concern(module: str) -> str:
    """A module's concern: its folder (`serve_app/dialects/openai`), or the module itself
    when it sits at the package's top (`serve_app/errors`)."""
    parts = module.split(".")
    if parts[0] == "deployments":
        return "deployments"
    path = ROOT.joinpath(*parts[:2])
    depth = 3 if parts[1:2] == ["dialects"] else 2
    return "/".join(parts[:depth]) if path.is_dir() else "/".join(parts[:2])


def imports() -> dict[str, set[str]]:
    """concern -> the concerns its modules import (top-level and in-function imports alike)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            here = concern(module)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    targets = [node.module] if node.module.count(".") else [f"{node.module}.{a.name}" for a in node.names]
                    graph.setdefault(here, set()).update(concern(t) for t in targets)
                elif isinstance(node, ast.Import):
                    graph.setdefault(here, set()).update(concern(a.name) for a in node.names
                                                         if a.name.split(".")[0] in PACKAGES)
            graph.setdefault(here, set()).discard(here)
    return graph


# Deprecated import paths kept for running clusters' configs: nothing of ours imports them.
SHIMS = {"serve_app/router", "serve_app/routing", "serve_app/request_routers"}


def test_the_folders_import_each_other_without_a_cycle():
    graph = {k: v - SHIMS for k, v in imports().items() if k not in SHIMS}
    assert not any(SHIMS & v for v in imports().values() if v), "nothing imports a deprecated path"
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = path[path.index(node):] + [node]
            raise AssertionError("import cycle between folders: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert "serve_app/ingress" not in set().union(*graph.values()), "the ingress is the top: nothing imports it"
    assert not graph.get("serve_app/config"), "config imports nothing of ours"


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_test_modules_have_names_of_their_own():
    # pytest imports test modules by basename (tests/ has no packages): two of a name break `pytest tests`.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []

"""The layout's rules hold: rooms import in one direction, platform tooling stands apart, and the
repository documents itself (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_names(path: Path) -> list[str]:
    """Dotted names a module imports (`from a.b import c` gives `a.b` and `a.b.c`)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def room_imports(package: str) -> dict[str, set[str]]:
    """Room (first-level module or subpackage of `package`) -> the rooms of the package it imports."""
    graph: dict[str, set[str]] = {}
    rooms = {
        p.name.removesuffix(".py") for p in (ROOT / package).iterdir() if p.suffix == ".py" or p.is_dir()
    }
    for path in (ROOT / package).rglob("*.py"):
        room = path.relative_to(ROOT / package).parts[0].removesuffix(".py")
        for name in imported_names(path):
            parts = name.split(".")
            if parts[0] == package and len(parts) > 1 and parts[1] in rooms:
                graph.setdefault(room, set()).add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle between distinct rooms (a room importing itself is fine)."""
    found, done = [], set()

    def visit(room: str, path: list[str]) -> None:
        for dep in graph.get(room, ()):
            if dep == room:
                continue
            if dep in path:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(room)

    for room in sorted(graph):
        visit(room, [room])
    return found


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}) == [["a", "b", "c", "a"]]


def test_no_room_imports_a_room_that_imports_it_back() -> None:
    assert cycles(room_imports("metrify_assets")) == []


def test_platform_tooling_does_not_import_the_code_location() -> None:
    for path in (ROOT / "metrify_platform").rglob("*.py"):
        assert not [n for n in imported_names(path) if n.startswith("metrify_assets")], path


# Spelled in pieces so this file does not contain what it looks for.
OUTSIDE = ("DESIGN" + ".md", "../" + "shared")


def test_nothing_points_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        path = ROOT / name
        if (
            path.suffix in {".py", ".sql", ".yml", ".yaml", ".md", ".toml", ".cfg", ".txt"}
            or name == "Makefile"
        ):
            text = path.read_text(errors="replace")
            assert not [o for o in OUTSIDE if o in text], path

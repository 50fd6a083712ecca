"""No import circle anywhere in the code we ship: every module imports first, in any order
(the `__main__` modules run their program when imported, so they are only in the graph)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"release": REPO / "release", "helionyx": REPO / "src" / "helionyx"}


def modules() -> dict[str, Path]:
    """Every module we ship, by dotted name."""
    found = {}
    for directory in ROOTS.values():
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(directory.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The modules of ours `path` imports, at the top or inside a function alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    wanted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            wanted |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            wanted |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {m for m in wanted if m in known and m != name and not name.startswith(f"{m}.")}


def test_no_module_we_ship_imports_itself_round_a_circle() -> None:
    known = modules()
    graph = {name: imports(path, name, known) for name, path in known.items()}
    circles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_every_module_imports_on_its_own() -> None:
    script = (
        "import importlib, sys\n"
        f"ROOTS = {tuple(ROOTS)!r}\n"
        "failed = []\n"
        f"for name in {sorted(m for m in modules() if not m.endswith('__main__'))!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ROOTS]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {exc!r}')\n"
        "print('\\n'.join(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout.strip() == ""

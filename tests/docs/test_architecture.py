"""docs/ARCHITECTURE.md's module map and the tree agree: every module named, every name real."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ARCHITECTURE.md"
#: Where the map must name every module.
MAPPED = ("release", "src/helionyx", "benchmarks")


def named_in_the_map() -> set[str]:
    """Every file path the doc's tree blocks name (`dir/` lines open a directory)."""
    named: set[str] = set()
    for block in re.findall(r"```\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        if not re.match(r"(release|src/helionyx|tests|benchmarks|deployment)/\n", block):
            continue
        opened: list[str] = []
        for line in block.splitlines():
            depth = (len(line) - len(line.lstrip(" "))) // 2
            head = re.split(r" {2,}", line.strip(), maxsplit=1)[0]
            del opened[depth:]
            for name in head.split(", "):
                if name.endswith("/"):
                    opened.append(name)
                else:
                    named.add("".join(opened) + name)
    return named


def shipped_modules() -> set[str]:
    """Every module under the mapped roots, and the test kits (an `__init__.py` that holds
    nothing but its docstring is not a module worth a line)."""
    found: set[str] = set()
    paths = [p for root in MAPPED for p in (REPO / root).rglob("*.py")]
    paths += [
        p
        for p in (REPO / "tests").rglob("*.py")
        if not p.name.startswith("test_") and p.name not in ("__init__.py", "conftest.py")
    ]
    for path in paths:
        if path.name == "__init__.py" and len(ast.parse(path.read_text()).body) <= 1:
            continue
        found.add(path.relative_to(REPO).as_posix())
    return found


def test_every_module_is_named_in_the_map() -> None:
    assert shipped_modules() - named_in_the_map() == set()


def test_every_name_in_the_map_exists() -> None:
    assert {name for name in named_in_the_map() if not (REPO / name).is_file()} == set()

"""The data contract of the code being released, read from its source without running it."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

from release.agent.protocol import DataContract, EventContract
from release.artifacts.git import Git
from release.errors import BuildError, GitError

EVENTS = Path("src/helionyx/domain/events.py")
PROJECTIONS = Path("src/helionyx/domain/projections.py")


def _assignments(path: Path) -> dict[str, ast.expr]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            found[node.target.id] = node.value
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def _value(names: dict[str, ast.expr], node: ast.expr) -> object:
    """A literal, where names of module-level string constants count as their values."""
    if isinstance(node, ast.Name) and node.id in names:
        return _value(names, names[node.id])
    if isinstance(node, ast.Dict):
        return {
            _value(names, k): _value(names, v)
            for k, v in zip(node.keys, node.values, strict=True)
            if k
        }
    return ast.literal_eval(node)


def read_contract(source: Path) -> DataContract:
    """From a source tree: `SCHEMA_VERSION` of the projections; per event type the version
    written (`SCHEMA_VERSIONS`) and the highest read (`READABLE_SCHEMA_VERSIONS`, else the same)."""
    try:
        events = _assignments(source / EVENTS)
        projections = _assignments(source / PROJECTIONS)
        writes = _value(events, events["SCHEMA_VERSIONS"])
        readable = _value(events, events.get("READABLE_SCHEMA_VERSIONS", events["SCHEMA_VERSIONS"]))
        schema = _value(projections, projections["SCHEMA_VERSION"])
    except (OSError, SyntaxError, KeyError, ValueError) as exc:
        raise BuildError(f"cannot read the data contract from the source: {exc}") from None
    if not (isinstance(writes, dict) and isinstance(readable, dict) and isinstance(schema, int)):
        raise BuildError("SCHEMA_VERSIONS and SCHEMA_VERSION are not literal versions")
    return {
        "projections": schema,
        "events": {
            str(kind): {"reads": int(readable.get(kind) or version), "writes": int(version)}
            for kind, version in sorted(writes.items())
        },
    }


def contract_at(git: Git, ref: str) -> DataContract | None:
    """The data contract of the source at `ref` (None when it has no such declarations)."""
    with tempfile.TemporaryDirectory(prefix="helionyx-contract-") as tmp:
        for relative in (EVENTS, PROJECTIONS):
            try:
                text = git.run("show", f"{ref}:{relative.as_posix()}")
            except GitError:
                return None
            (Path(tmp) / relative).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / relative).write_text(text + "\n", encoding="utf-8")
        try:
            return read_contract(Path(tmp))
        except BuildError:
            return None


def changes(before: DataContract, after: DataContract) -> list[str]:
    """What differs between two contracts, one phrase each."""
    found = []
    if before["projections"] != after["projections"]:
        found.append(f"projections schema {before['projections']} -> {after['projections']}")
    for kind in sorted(set(before["events"]) | set(after["events"])):
        old, new = before["events"].get(kind), after["events"].get(kind)
        if old != new:
            found.append(f"{kind} {_rw(old)} -> {_rw(new)}")
    return found


def _rw(entry: EventContract | None) -> str:
    return f"r{entry['reads']}/w{entry['writes']}" if entry else "absent"


def describe(contract: DataContract) -> str:
    """One line: `projections v1; MessageIngested r1/w1, …`."""
    events = ", ".join(
        f"{kind} r{e['reads']}/w{e['writes']}" for kind, e in sorted(contract["events"].items())
    )
    return f"projections v{contract['projections']}; events {events or 'as of version 1'}"

"""`state`: everything status, releases and an operation's planning need, in one call."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from . import contract, deploylog, readmodels, venv
from .layout import Context
from .protocol import (
    HOST_SETTINGS,
    MANIFEST,
    Health,
    ReleaseEntry,
    StateAnswer,
    StateRequest,
)


def state(ctx: Context, req: StateRequest) -> StateAnswer:
    """Releases, links, lock, unit, set-up, the decisive deploy-log records; health if asked."""
    layout, system = ctx.layout, ctx.system
    releases: list[ReleaseEntry] = []
    for path in layout.release_dirs():
        entry: ReleaseEntry = {"sha": path.name, "complete": (path / MANIFEST).is_file()}
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / MANIFEST).read_text())
            entry["version"] = manifest.get("version")
            entry["tag"] = manifest.get("tag")
            entry["built_at"] = manifest.get("built_at")
            entry["data_contract"] = contract.of_manifest(manifest)
        entry["python"], entry["runnable"] = venv.interpreter_of(path / "venv")
        releases.append(entry)
    partials = (
        sorted(p.name for p in layout.releases.glob(".*")) if layout.releases.is_dir() else []
    )
    health: Health = {}
    if req.get("probe") and layout.port:
        status, body, error = system.probe(layout.port, "/health")
        ready_status, ready_body, _ = system.probe(layout.port, "/health/ready")
        health = {
            "status": status,
            "body": body,
            "error": error,
            "ready_status": ready_status,
            "ready_body": ready_body,
        }
    answer: StateAnswer = {
        "releases": releases,
        "partials": partials,
        "current": layout.link_target(layout.current),
        "previous": layout.link_target(layout.previous),
        "lock": layout.holder(),
        "unit": system.unit_state(layout.unit) if layout.unit else {},
        "health": health,
        "setup": {
            "user": system.service_user() is not None,
            "config_file": layout.config_file.is_file(),
            "unit_file": (system.units_dir / f"{layout.unit}.service").is_file(),
            "base_dir": layout.base.is_dir(),
        },
        "log": deploylog.read_decisive(layout.log),
        "read_models": sorted(readmodels.present(layout)),
        "platform": system.platform(),
    }
    if req.get("events"):
        answer["event_versions"] = contract.log_versions(layout.data_dir / "events")
    if req.get("details"):
        lock = layout.current / "requirements.lock"
        answer["current_lock"] = lock.read_text() if lock.is_file() else None
        recorded = layout.base / HOST_SETTINGS
        with contextlib.suppress(OSError, ValueError):
            answer["host_settings"] = None
            answer["host_settings"] = json.loads(recorded.read_text())
        answer["unit_files"] = {
            path.name: path.read_text()
            for kind in ("service", "socket")
            if (path := system.units_dir / f"{layout.unit}.{kind}").is_file()
        }
    if req.get("count_events"):
        answer["event_count"] = _count_lines(layout.data_dir / "events")
    return answer


def _count_lines(events_dir: Path) -> int:
    total = 0
    for path in events_dir.glob("events-*.jsonl") if events_dir.is_dir() else []:
        with path.open("rb") as handle:
            total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return total

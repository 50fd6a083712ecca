"""Backups of an environment's data on the host: take (while it runs), list, restore."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from . import activate, checksums, readmodels
from .activate import health_gate
from .errors import AgentError
from .files import fsync_dir
from .layout import Context
from .protocol import (
    DEPLOY_LOG,
    MANIFEST,
    SUMS,
    BackupAnswer,
    BackupEntry,
    BackupRequest,
    BackupsAnswer,
    Empty,
    RestoreAnswer,
    RestoreRequest,
)
from .settings import read_env_file
from .timestamps import compact_utc, utc_timestamp

BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


def backup_root(ctx: Context, config_file: Path, env: str) -> Path:
    """BACKUP_ROOT/<env>, BACKUP_ROOT from the env's settings file when it is an absolute path
    (a relative one is meant for running the service in a checkout), else the host default."""
    configured = Path(read_env_file(config_file).get("BACKUP_ROOT") or ".")
    return (configured if configured.is_absolute() else ctx.system.backups_dir) / env


def _copy_prefix(source: Path, target: Path, size: int) -> str:
    """Copy the first `size` bytes of `source` to `target`; return their SHA-256."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        left = size
        while left:
            chunk = reader.read(min(left, 1 << 20))
            if not chunk:
                raise AgentError(f"{source} is shorter than its recorded position")
            writer.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def backup(ctx: Context, req: BackupRequest) -> BackupAnswer:
    """Snapshot the env while it runs: events up to a position taken under the store's lock,
    projections through SQLite's online backup, the deploy log, a manifest with checksums."""
    import fcntl  # noqa: PLC0415 - POSIX only, like the host
    import sqlite3  # noqa: PLC0415 - only backups need it

    layout = ctx.layout
    events_dir = layout.data_dir / "events"
    if not events_dir.is_dir():
        raise AgentError(f"{events_dir} does not exist: nothing to back up")
    root = backup_root(ctx, layout.config_file, layout.env)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # the users' messages: root only
    backup_id = compact_utc()
    suffix = 1
    while (root / backup_id).exists():
        backup_id = f"{backup_id.split('-')[0]}-{suffix}"
        suffix += 1
    partial = root / f".{backup_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "events").mkdir(parents=True, mode=0o700)
    # The position: every file's size, read while the service cannot append (appends are whole
    # lines under this lock), so the copy ends on a line boundary in every file.
    with (events_dir / ".events.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        position = {p.name: p.stat().st_size for p in sorted(events_dir.glob("events-*.jsonl"))}
    events: list[dict[str, Any]] = []
    for name, size in position.items():
        digest = _copy_prefix(events_dir / name, partial / "events" / name, size)
        lines = (partial / "events" / name).read_bytes().count(b"\n")
        events.append({"file": name, "bytes": size, "lines": lines, "sha256": digest})
    db = layout.data_dir / "projections" / "projections.db"
    if db.is_file():
        source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        target = sqlite3.connect(partial / "projections.db")
        with target:
            source.backup(target)
        source.close()
        target.close()
    if layout.log.is_file():
        shutil.copyfile(layout.log, partial / DEPLOY_LOG)
    manifest = {
        "schema_version": 1,
        "id": backup_id,
        "env": layout.env,
        "created_at": utc_timestamp(),
        "position": position,
        "events": events,
        "event_count": sum(int(e["lines"]) for e in events),
        "release": layout.link_target(layout.current),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    names = sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*") if p.is_file())
    checksums.write(partial, names)
    size = sum((partial / n).stat().st_size for n in names)
    os.replace(partial, root / backup_id)
    fsync_dir(root)
    return {
        "id": backup_id,
        "path": str(root / backup_id),
        "event_count": int(manifest["event_count"]),  # type: ignore[call-overload]
        "bytes": size,
        "files": [*names, SUMS],
        "removed": _prune_backups(root, int(req["keep_backups"])),
    }


def _backup_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and BACKUP_ID.match(p.name))


def _prune_backups(root: Path, keep: int) -> list[str]:
    """Keep the newest `keep` backups (IDs sort by time)."""
    doomed = _backup_dirs(root)[: -keep or None] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return [p.name for p in doomed]


def backups(ctx: Context, req: Empty) -> BackupsAnswer:
    """The env's backups, oldest first."""
    root = backup_root(ctx, ctx.layout.config_file, ctx.layout.env)
    listed: list[BackupEntry] = []
    for path in _backup_dirs(root):
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / MANIFEST).read_text())
            listed.append(
                {
                    "id": path.name,
                    "path": str(path),
                    "created_at": manifest.get("created_at"),
                    "event_count": manifest.get("event_count"),
                    "release": manifest.get("release"),
                }
            )
    return {"root": str(root), "backups": listed}


def _verify_backup(path: Path) -> dict[str, Any]:
    if not (path / SUMS).is_file():
        raise AgentError(f"{path} is not a complete backup (no {SUMS})")
    mismatch = checksums.first_mismatch(path)
    if mismatch is not None:
        raise AgentError(f"backup {path.name}: checksum mismatch for {mismatch}")
    manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    return manifest


def restore(ctx: Context, req: RestoreRequest) -> RestoreAnswer:
    """Verify a backup, stop the env, put the backup's events in place (keeping what they
    replace), rebuild projections, start and health-check."""
    layout = ctx.layout
    source_root = backup_root(ctx, Path(req["source_config_file"]), req["source_env"])
    path = source_root / req["backup_id"]
    if not BACKUP_ID.match(req["backup_id"]) or not path.is_dir():
        raise AgentError(f"no backup {req['backup_id']} of {req['source_env']} in {source_root}")
    manifest = _verify_backup(path)
    current = layout.link_target(layout.current)
    if current is None or not layout.is_complete(current):
        raise AgentError(f"{layout.env} has no current release to rebuild projections with")
    activate.stop(ctx, {})
    moved: list[tuple[Path, Path]] = []
    try:
        rebuilt = _swap_in(ctx, path, manifest, current, moved)
    except BaseException:
        # A restore that cannot finish changes nothing: the replaced data goes back and the
        # env starts again on it.
        for original, aside in reversed(moved):
            shutil.rmtree(original, ignore_errors=True)
            os.replace(aside, original)
        activate.start(ctx)
        raise
    activate.start(ctx)
    gate = health_gate(ctx, None, current, float(req["timeout"]))
    return {
        **gate,
        "backup": manifest["id"],
        "from_env": manifest["env"],
        "event_count": manifest["event_count"],
        "kept": [str(aside) for _, aside in moved],
        "rebuilt": rebuilt,
    }


def _swap_in(
    ctx: Context,
    backup: Path,
    manifest: dict[str, Any],
    current: str,
    moved: list[tuple[Path, Path]],
) -> str:
    """Move events/ and projections/ aside (recorded in `moved`), put the backup's events in
    place and rebuild the projections from them with the current release."""
    layout, system = ctx.layout, ctx.system
    stamp = compact_utc()
    for sub in ("events", "projections"):
        existing = layout.data_dir / sub
        if existing.exists():
            aside = layout.data_dir / f"{sub}.replaced-{stamp}"
            os.replace(existing, aside)
            moved.append((existing, aside))
        existing.mkdir(mode=0o750)
        system.chown(existing)
    for entry in manifest["events"]:
        target = layout.data_dir / "events" / entry["file"]
        shutil.copyfile(backup / "events" / entry["file"], target)
        system.chown(target)
        target.chmod(0o640)
    fsync_dir(layout.data_dir / "events")
    return readmodels.rebuild(ctx, current, what="rebuilding projections")

"""Backups of an environment's data on its host: take, list, restore (into the same or
another environment), optionally pull to this machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.environments import Environment
from release.errors import UsageError
from release.history import SUCCEEDED
from release.operation import Operation, Reporter, reading
from release.remote import Remote, SshRemote


@dataclass(frozen=True)
class Backup:
    """One backup on the host."""

    id: str
    path: str
    created_at: str | None
    event_count: int | None
    release: str | None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Backup:
        """From the agent's answer."""
        return cls(
            raw["id"],
            raw["path"],
            raw.get("created_at"),
            raw.get("event_count"),
            raw.get("release"),
        )


def take(env: Environment, reporter: Reporter, pull_to: Path | None = None) -> dict[str, Any]:
    """Back `env` up on its host while it runs; with `pull_to`, copy the backup here too."""
    with Operation(env, "backup", reporter) as op, op.locked("backup"):
        with op.timed("backup", "events to a position, projections, deploy log"):
            done: dict[str, Any] = op.call("backup", "backup", keep_backups=env.keep_backups)
        op.context.update(backup=done["id"], event_count=done["event_count"])
        if pull_to is not None:
            target = pull_to / env.name / done["id"]
            with op.timed("pull", str(target)):
                assert op.host is not None
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(0o700)
                for name in done["files"]:
                    local = target / name
                    local.parent.mkdir(parents=True, exist_ok=True)
                    op.host.remote.get(f"{done['path']}/{name}", local)
                    local.chmod(0o600)
            done["pulled_to"] = str(target)
        op.finish = op.finish_event(SUCCEEDED)
        return done


def listing(
    env: Environment, remote_factory: Callable[[Environment], Remote] = SshRemote
) -> list[Backup]:
    """The env's backups on its host, oldest first (reading only: no lock, no record)."""
    with reading(env, remote_factory) as host:
        answer = host.call("backups")
    return [Backup.of(raw) for raw in answer["backups"]]


def parse_source(ref: str, env: Environment) -> tuple[str, str]:
    """`ID` (this env's backup) or `ENV/ID` (another env's on the same host)."""
    source_env, _, backup_id = ref.rpartition("/")
    if not backup_id:
        raise UsageError("FROM names no backup", hint="use FROM=ID or FROM=ENV/ID (make backups)")
    return source_env or env.name, backup_id


def restore(
    env: Environment, source: Environment, backup_id: str, reporter: Reporter
) -> dict[str, Any]:
    """Restore `source`'s backup into `env`: verify, stop, swap the data in (keeping the old),
    rebuild projections, start, health-check."""
    with Operation(env, "restore", reporter) as op:
        host = op.connect()
        # An unknown backup is refused before the lock: bad input leaves the host as it was.
        known = host.call(
            "backups", env=source.name, config_file=source.config_file, base_dir=source.base_dir
        )["backups"]
        if backup_id not in {b["id"] for b in known}:
            raise UsageError(
                f"no backup {backup_id} of {source.name} on {env.host}",
                hint=f"make backups ENV={source.name} lists them",
                env=env.name,
            )
        with op.locked(f"restore {source.name}/{backup_id}") as state:
            op.context.update(
                backup=f"{source.name}/{backup_id}",
                sha=state.current,
                version=state.version_of(state.current),
            )
            with op.timed("restore", f"{source.name}/{backup_id} -> {env.name}"):
                done: dict[str, Any] = op.call(
                    "restore",
                    "restore",
                    backup_id=backup_id,
                    source_env=source.name,
                    source_config_file=source.config_file,
                    timeout=env.health_timeout,
                )
            op.settle("restore", done)
            return done

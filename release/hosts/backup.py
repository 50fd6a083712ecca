"""Backups of an environment's data on its host: take, list, restore (into the same or
another environment), optionally pull to this machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from release.agent.protocol import (
    BACKUP,
    BACKUPS,
    RESTORE,
    SUCCEEDED,
    BackupAnswer,
    BackupEntry,
    RestoreAnswer,
    RestoreRequest,
)
from release.errors import UsageError
from release.hosts.context import Context
from release.hosts.environments import Environment
from release.hosts.fleet import each, values
from release.hosts.host import target_of
from release.hosts.operation import Operation, reading


@dataclass(frozen=True)
class Backup:
    """One backup on the host."""

    id: str
    path: str
    created_at: str | None
    event_count: int | None
    release: str | None

    @classmethod
    def of(cls, raw: BackupEntry) -> Backup:
        """From the agent's answer."""
        return cls(raw["id"], raw["path"], raw["created_at"], raw["event_count"], raw["release"])


@dataclass(frozen=True)
class TakenBackup:
    """A backup just taken (and where it was pulled to, if it was)."""

    done: BackupAnswer
    pulled_to: str | None


def take(ctx: Context, pull_to: Path | None = None) -> TakenBackup:
    """Back the env up on its host while it runs; with `pull_to`, copy the backup here too."""
    env = ctx.env
    with (
        Operation(ctx, "backup") as op,
        op.locked("backup"),
    ):
        what = "events to a position, projections, deploy log"
        done = op.step("backup", BACKUP({"keep_backups": env.keep_backups}), what)
        op.context.update({"backup": done["id"], "event_count": done["event_count"]})
        pulled = None
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
            pulled = str(target)
        op.finish = op.finish_event(SUCCEEDED)
        return TakenBackup(done, pulled)


def take_everywhere(ctx: Context, pull_to: Path | None = None) -> list[tuple[str, TakenBackup]]:
    """Every host's own data backed up on that host, at once (pulled to `pull_to/<host>/…`)."""
    taken = values(
        each(ctx, lambda on: take(on, pull_to / on.env.host if pull_to else None)), "backup"
    )
    return list(zip(ctx.env.hosts, taken, strict=True))


def listing_everywhere(ctx: Context) -> list[tuple[str, list[Backup]]]:
    """Each host's backups (every host backs up its own data)."""
    return list(zip(ctx.env.hosts, values(each(ctx, listing), "backups"), strict=True))


def listing(ctx: Context) -> list[Backup]:
    """The env's backups on its host, oldest first (reading only: no lock, no record)."""
    with reading(ctx, "backups") as host:
        answer = host.call(BACKUPS({}))
    return [Backup.of(raw) for raw in answer["backups"]]


def parse_source(ref: str, env: Environment) -> tuple[str, str]:
    """`ID` (this env's backup) or `ENV/ID` (another env's on the same host)."""
    source_env, _, backup_id = ref.rpartition("/")
    if not backup_id:
        raise UsageError("FROM names no backup", hint="use FROM=ID or FROM=ENV/ID (make backups)")
    return source_env or env.name, backup_id


def restore(ctx: Context, source: Environment, backup_id: str) -> RestoreAnswer:
    """Restore `source`'s backup into the context's env: verify, stop, swap the data in (keeping
    the old), rebuild projections, start, health-check."""
    env = ctx.env
    with Operation(ctx, "restore") as op:
        host = op.connect()
        # An unknown backup is refused before the lock: bad input leaves the host as it was.
        known = host.call(BACKUPS({}), target=target_of(source))["backups"]
        if backup_id not in {b["id"] for b in known}:
            raise UsageError(
                f"no backup {backup_id} of {source.name} on {env.host}",
                hint=f"make backups ENV={source.name} lists them",
                env=env.name,
            )
        with op.locked(f"restore {source.name}/{backup_id}") as state:
            op.context.update(
                {
                    "backup": f"{source.name}/{backup_id}",
                    "sha": state.current,
                    "version": state.version_of(state.current),
                }
            )
            request: RestoreRequest = {
                "backup_id": backup_id,
                "source_env": source.name,
                "source_config_file": source.config_file,
                "timeout": env.health_timeout,
            }
            done = op.step("restore", RESTORE(request), f"{source.name}/{backup_id} -> {env.name}")
            op.settle("restore", done)
            return done

"""Read models on the host: one projections database per schema version, side by side.

A release whose projections schema differs from the running one's gets its own database,
built from the event log beside the one in use (`migrate`) while the running release serves;
a rollback finds its own still there. Files are named as the service names them
(`helionyx.domain.projections.read_model_path`): the configured path for schema 1,
`<name>.v<N><suffix>` for any other. A read model goes only when no kept release uses it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import contract
from .errors import AgentError
from .files import replace_whole
from .install import build_lock
from .layout import Context, Layout
from .protocol import FORCED_READ, MANIFEST, MigrateAnswer, MigrateRequest
from .settings import read_env_file
from .system import Ticker
from .timestamps import utc_timestamp

_VERSIONED = re.compile(r"^(?P<stem>.+)\.v(?P<schema>\d+)$")
#: Files SQLite and the service keep beside a database.
_COMPANIONS = ("", "-wal", "-shm", ".lock", ".rebuild", ".rebuild-wal", ".rebuild-shm")


def configured_path(layout: Layout) -> Path:
    """PROJECTIONS_DB_PATH from the env's settings file (set up as data_dir/projections/…)."""
    value = read_env_file(layout.config_file).get("PROJECTIONS_DB_PATH")
    return Path(value) if value else layout.data_dir / "projections" / "projections.db"


def path_for(configured: Path, schema: int) -> Path:
    """The database of the read model with `schema` (the service's naming)."""
    if schema == 1:
        return configured
    return configured.with_name(f"{configured.stem}.v{schema}{configured.suffix}")


def present(layout: Layout) -> dict[int, Path]:
    """{schema: file} of the read models on disk."""
    configured = configured_path(layout)
    found: dict[int, Path] = {}
    if not configured.parent.is_dir():
        return found
    for path in configured.parent.glob(f"*{configured.suffix}"):
        if path == configured:
            found[1] = path
            continue
        match = _VERSIONED.match(path.name[: -len(configured.suffix) or None])
        if match and match["stem"] == configured.stem:
            found[int(match["schema"])] = path
    return found


def schema_of(layout: Layout, sha: str) -> int:
    """The projections schema release `sha` uses."""
    try:
        manifest = json.loads((layout.releases / sha / MANIFEST).read_text())
    except (OSError, ValueError):
        return contract.LEGACY["projections"]
    return contract.of_manifest(manifest)["projections"]


def migrate(ctx: Context, req: MigrateRequest) -> MigrateAnswer:
    """Build release `sha`'s read model from the whole log, beside the one in use (the
    service's own `rebuild-projections`, which builds a staging file and renames it whole)."""
    layout, sha = ctx.layout, req["sha"]
    if not layout.is_complete(sha):
        raise AgentError(f"release {sha} is not complete on this host")
    started = ctx.system.monotonic()
    total = float(req.get("estimate") or 0)

    def tick(done: float) -> None:
        # A build is one subprocess: its time, not its rows, is what can be told.
        ctx.report({"step": "read model", "done": done, "total": total})

    # The next deploy's agent waits here if this one outlives its operator.
    with build_lock(layout):
        what = "building the read model (helionyx rebuild-projections)"
        output = rebuild(ctx, sha, what=what, on_tick=tick)
    schema = schema_of(layout, sha)
    return {
        "schema": schema,
        "path": str(path_for(configured_path(layout), schema)),
        "seconds": round(ctx.system.monotonic() - started, 3),
        "output": output,
    }


def rebuild(ctx: Context, sha: str, *, what: str, on_tick: Ticker | None = None) -> str:
    """Release `sha`'s own `helionyx rebuild-projections`, as the service user with the env's
    settings: its read model from the whole log (a staging file, renamed whole); its output."""
    layout = ctx.layout
    python = layout.releases / sha / "venv" / "bin" / "python"
    settings = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        **read_env_file(layout.config_file),
        "ENV": layout.env,
    }
    output = ctx.system.run(
        [str(python), "-m", "helionyx", "rebuild-projections", "--env", layout.env],
        env=settings,
        timeout=3600,
        what=what,
        as_service_user=True,
        cwd=layout.data_dir,
        on_tick=on_tick,
    )
    return output.strip()


def forced_file(layout: Layout) -> Path:
    """Left by a rollback forced onto a release that cannot read the whole log: the service
    of the release it names skips those events and keeps its read model apart (the service's
    `helionyx.domain.projections.FORCED_READ`)."""
    return configured_path(layout).parent / FORCED_READ


def forced_release(layout: Layout) -> str | None:
    """The release a forced rollback allowed to serve a log it cannot wholly read, if any."""
    try:
        return str(json.loads(forced_file(layout).read_text())["commit"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def allow_forced(layout: Layout, sha: str, reason: str, skips: list[str]) -> None:
    """Record that the operator let release `sha` serve a log holding `skips` it cannot read."""
    record = {"commit": sha, "reason": reason, "at": utc_timestamp(), "skips": skips}
    replace_whole(forced_file(layout), json.dumps(record, indent=2) + "\n")


def forget_forced(layout: Layout, sha: str) -> None:
    """Release `sha` is live and healthy: forget what a forced rollback allowed another release,
    and that release's read model (kept until now: going back to it needed them)."""
    if forced_release(layout) in (None, sha):
        return
    forced_file(layout).unlink(missing_ok=True)
    configured = configured_path(layout)
    for path in configured.parent.glob(f"{configured.stem}*.forced{configured.suffix}*"):
        path.unlink(missing_ok=True)


def prune(layout: Layout) -> list[str]:
    """Remove the read models no release on the host uses any more."""
    used = {schema_of(layout, p.name) for p in layout.release_dirs()}
    removed = []
    for schema, path in sorted(present(layout).items()):
        if schema in used or not used:
            continue
        for suffix in _COMPANIONS:
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        removed.append(path.name)
    return removed

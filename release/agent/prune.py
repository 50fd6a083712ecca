"""Release retention: which releases go, decided here and nowhere else."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from . import deploylog, readmodels
from .layout import Context
from .protocol import LogRecord, PruneAnswer, PruneRequest


def doomed(
    releases: Iterable[str], log: list[LogRecord], keep: int, protected: set[str]
) -> list[str]:
    """The releases to delete: all but the `keep` most recently deployed good ones, failed
    ones first to go; never a protected one (current, previous, the one just deployed)."""
    failed = deploylog.failed_shas(log)
    ordered = deploylog.last_deployed_first(log, releases)
    good = [s for s in ordered if s not in failed]
    kept = set(good[: max(keep, 0)]) | protected
    return [s for s in ordered if s not in kept]


def prune(ctx: Context, req: PruneRequest) -> PruneAnswer:
    """Delete what `doomed` says, each renamed aside first so it never looks complete."""
    layout = ctx.layout
    protected = {
        s for s in (layout.link_target(layout.current), layout.link_target(layout.previous)) if s
    } | set(req["protect"])
    log = deploylog.read_decisive(layout.log)
    # Releases the log never names (built, never live) rank by age among themselves.
    newest = sorted(layout.release_dirs(), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = doomed((p.name for p in newest), log, int(req["keep"]), protected)
    for sha in removed:
        aside = layout.releases / f".{sha}.deleting"
        os.replace(layout.releases / sha, aside)
        shutil.rmtree(aside)
    return {"removed": removed, "read_models": readmodels.prune(layout)}

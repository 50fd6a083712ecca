"""The watch after a health gate: a release that turns bad within the env's `watch` seconds
is rolled back by `activate.go_live`; the operator may cut it short (`cut_watch`)."""

from __future__ import annotations

from .errors import WatchCut
from .layout import Context
from .protocol import WATCH_CUT, Empty


def watch(ctx: Context, seconds: float) -> str | None:
    """Keep watching a release that passed its health gate: why it turned bad within
    `seconds` (the unit failed or restarted, /health/ready failed, 5xx answers appeared), or
    None."""
    layout, system = ctx.layout, ctx.system
    cut = layout.base / WATCH_CUT
    cut.unlink(missing_ok=True)  # a request left by an earlier watch ends nothing now
    restarts = system.unit_state(layout.unit).get("NRestarts", "0")
    errors = _server_errors(ctx)
    started = system.monotonic()
    deadline = started + seconds
    next_report = started
    while (now := system.monotonic()) < deadline:
        if now >= next_report:
            ctx.report({"step": "watch", "done": round(now - started, 1), "total": seconds})
            next_report += 1
        if cut.exists():
            cut.unlink(missing_ok=True)
            raise WatchCut(system.monotonic() - started)
        state = system.unit_state(layout.unit)
        if state.get("ActiveState") != "active":
            return f"the unit went {state.get('ActiveState')} ({state.get('Result')})"
        if state.get("NRestarts", "0") != restarts:
            return f"the unit restarted ({state.get('NRestarts')} restarts)"
        status, body, error = system.probe(layout.port, "/health/ready", timeout=1.0)
        if status != 200:
            reason = body.get("reason") if isinstance(body, dict) else error
            return f"/health/ready answered {status or 'nothing'} ({reason})"
        count = _server_errors(ctx)
        if errors is not None and count is not None and count > errors:
            return f"it answered {count - errors} request(s) with a server error (5xx)"
        system.sleep(0.25)
    return None


def cut_watch(ctx: Context, req: Empty) -> Empty:
    """Ask the watch running for this env (in another agent) to end now, leaving the release."""
    (ctx.layout.base / WATCH_CUT).touch()
    return {}


def _server_errors(ctx: Context) -> int | None:
    """The service's own count of 5xx answers since its start (None if it reports none)."""
    status, body, _ = ctx.system.probe(ctx.layout.port, "/health", timeout=1.0)
    count = body.get("server_errors") if status == 200 and isinstance(body, dict) else None
    return count if isinstance(count, int) else None

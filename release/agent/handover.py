"""Putting a release in by handing it the running service's socket instead of restarting.

The service does the hand-over itself (`helionyx.handover` in the release): asked by SIGHUP,
it starts the release `current` points at beside itself, and switches only once that one is
ready. The agent decides whether it can (`refusal`), asks, and watches /health until the new
release answers or the old one reports why it never will.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from .files import replace_whole
from .layout import Context, Layout
from .protocol import HANDOVER_REQUEST, Gate

#: The newest hand-over protocol this agent speaks (`helionyx.handover.PROTOCOL`, in /health).
PROTOCOL = 2
#: The first protocol whose ready successor can be held until told to switch.
HOLDS = 2
#: The module a release must ship to take a socket over.
TAKES_OVER = "helionyx/handover.py"
#: Beyond its own readiness: letting go of the log and the new process taking over.
SLACK_SECONDS = 15.0
#: How often /health is asked which process answers, and how often systemd is asked.
TICK_SECONDS = 0.02
ASK_SYSTEMD_EVERY = 0.25


@dataclass(frozen=True)
class Asked:
    """A hand-over asked of the running service: the agent's name for it, and who ran then."""

    attempt: str
    running: str | None


def refusal(ctx: Context, sha: str, units_changed: bool, *, hold: bool = False) -> str | None:
    """Why release `sha` must be put in by a restart (None: a hand-over can do it)."""
    layout, system = ctx.layout, ctx.system
    if units_changed:
        return "its units changed"
    state = system.unit_state(layout.unit)
    if state.get("ActiveState") != "active":
        return "the service is not running"
    status, body, _ = system.probe(layout.port, "/health", timeout=1.0)
    offered = body.get("handover") if status == 200 and isinstance(body, dict) else None
    protocol = offered.get("protocol") if isinstance(offered, dict) else None
    if not isinstance(protocol, int) or not 1 <= protocol <= PROTOCOL:
        return "the running release cannot hand over"
    if hold and protocol < HOLDS:
        return "the running release cannot hold a successor ready"
    if not takes_over(layout, sha):
        return "the new release cannot take a socket over"
    if _settings_changed(layout, state):
        return "the env's settings changed since the service started"
    return None


def takes_over(layout: Layout, sha: str) -> bool:
    """Whether release `sha` can start beside the running one and take its socket over."""
    venv = layout.releases / sha / "venv" / "lib"
    return any(venv.glob(f"python3*/site-packages/{TAKES_OVER}"))


def _settings_changed(layout: Layout, state: dict[str, str]) -> bool:
    """The settings file is newer than the service: a successor would inherit the old ones."""
    try:
        changed = layout.config_file.stat().st_mtime
        uptime = float(state.get("uptime_seconds", "0"))
    except (OSError, ValueError):
        return True
    return changed > time.time() - uptime


def hand_over(ctx: Context, sha: str, timeout: float) -> Gate:
    """Ask the running service to hand its socket to release `sha` (what `current` names),
    and wait until another process is the unit's main PID or the running one says why none
    will be (the same release handing over to itself must be told apart: the PID is)."""
    started = ctx.system.monotonic()
    asked = ask(ctx, sha, timeout)
    if isinstance(asked, str):
        return _failed(ctx, started, asked, serving_on=True)
    return taken(ctx, asked, started, started + timeout + SLACK_SECONDS)


def ask(ctx: Context, sha: str, timeout: float, hold: float = 0.0) -> Asked | str:
    """Write the request and send the SIGHUP: the attempt, or why it could not be asked."""
    layout, system = ctx.layout, ctx.system
    attempt = os.urandom(8).hex()
    running = system.unit_state(layout.unit).get("MainPID")
    request: dict[str, object] = {"sha": sha, "timeout": timeout, "attempt": attempt}
    if hold:
        request["hold"] = hold
    replace_whole(layout.base / HANDOVER_REQUEST, json.dumps(request) + "\n")
    code, error = _sighup(ctx)
    if code != 0:
        return f"systemctl kill failed: {error or code}"
    return Asked(attempt, running)


def _sighup(ctx: Context) -> tuple[int, str]:
    return ctx.system.systemctl(
        "kill", "--kill-whom=main", "--signal=SIGHUP", f"{ctx.layout.unit}.service"
    )


def ready(ctx: Context, asked: Asked, deadline: float) -> str | None:
    """Wait until the held successor of `asked` is ready beside the running release (None),
    or why it will not be (it is gone then, and the running release serves on)."""
    system = ctx.system
    while True:
        status, body, error = system.probe(ctx.layout.port, "/health", timeout=1.0)
        report = body.get("handover") if status == 200 and isinstance(body, dict) else None
        last = report.get("last") if isinstance(report, dict) else None
        mine = isinstance(last, dict) and last.get("attempt") == asked.attempt
        if mine and isinstance(last, dict) and last.get("state") == "ready":
            return None
        failed = _failure(report, asked.attempt)
        if failed is not None:
            return failed
        # A slow or missed /health answer is not a verdict (the host may be busy); a dead unit is.
        if status != 200 and system.unit_state(ctx.layout.unit).get("ActiveState") != "active":
            return f"the running release stopped ({error or status})"
        if system.monotonic() >= deadline:
            return "the successor was not ready in time"
        system.sleep(TICK_SECONDS)


def tell(ctx: Context, asked: Asked, word: str) -> str | None:
    """Tell the running release what to do with its held successor: `switch` or `abort`;
    why it could not be told, if it could not."""
    request = {"attempt": asked.attempt, "word": word}
    # Read at once by the running process, and worthless after a crash: not synced to disk.
    replace_whole(ctx.layout.base / HANDOVER_REQUEST, json.dumps(request) + "\n", durable=False)
    code, error = _sighup(ctx)
    return None if code == 0 else f"systemctl kill failed: {error or code}"


def taken(ctx: Context, asked: Asked, started: float, deadline: float) -> Gate:
    """Wait until another process than `asked.running` is the unit's main PID (taken over),
    or the running one reports why the attempt failed."""
    layout, system = ctx.layout, ctx.system
    attempt, running = asked.attempt, asked.running
    checked = -ASK_SYSTEMD_EVERY
    while True:
        # /health every tick (one request); systemd, a process per question, less often:
        # both would take CPU from the service while its successor boots.
        status, body, _ = system.probe(layout.port, "/health", timeout=1.0)
        report = body.get("handover") if status == 200 and isinstance(body, dict) else None
        failed = _failure(report, attempt)
        if failed is not None:
            return _failed(ctx, started, failed, serving_on=True)
        answering = str(report.get("pid")) if isinstance(report, dict) else None
        now = system.monotonic()
        if answering not in (None, running) or now - checked >= ASK_SYSTEMD_EVERY:
            checked = now
            state = system.unit_state(layout.unit)
            if state.get("ActiveState") == "failed":
                reason = "the unit failed during the hand-over"
                return _failed(ctx, started, reason, serving_on=False)
            if state.get("MainPID") not in (running, "0", None):
                return {"healthy": True, "seconds": _since(ctx, started)}
        if now >= deadline:
            reason = f"the hand-over did not end within {deadline - started:.0f} s"
            return _failed(ctx, started, reason, serving_on=False)
        system.sleep(TICK_SECONDS)


def _failure(report: object, attempt: str) -> str | None:
    """Why hand-over `attempt` failed, as the running release reports it in /health."""
    last = report.get("last") if isinstance(report, dict) else None
    if isinstance(last, dict) and last.get("attempt") == attempt and last.get("state") == "failed":
        return f"it did not get ready beside the running release: {last.get('reason')}"
    return None


def _failed(ctx: Context, started: float, reason: str, *, serving_on: bool) -> Gate:
    seconds = _since(ctx, started)
    return {"healthy": False, "seconds": seconds, "reason": reason, "serving_on": serving_on}


def _since(ctx: Context, started: float) -> float:
    return round(ctx.system.monotonic() - started, 3)

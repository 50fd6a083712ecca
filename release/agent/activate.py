"""Putting a release live: switch `current`, restart, health gate, and `go_live`, which does
all of it and on failure goes back, on the host alone (it also writes the finish record)."""

from __future__ import annotations

import json

from . import contract, deploylog, handover, readmodels, recovery, units
from .errors import AgentError, WatchCut
from .files import flip
from .layout import Context, Layout
from .protocol import (
    FAILED,
    MANIFEST,
    ROLLED_BACK,
    SUCCEEDED,
    ActivateAnswer,
    ActivateRequest,
    Empty,
    Gate,
    GoLiveAnswer,
    GoLiveRequest,
    JournalAnswer,
    JournalRequest,
    LogRecord,
    RestartRequest,
    StopAnswer,
)
from .timestamps import utc_timestamp
from .watch import watch


def switch(layout: Layout, sha: str, previous: str | None) -> str | None:
    """Flip `current` (and `previous`, when given and complete); return what was current."""
    if not layout.is_complete(sha):
        raise AgentError(f"release {sha} is not complete on this host")
    before = layout.link_target(layout.current)
    if previous and layout.is_complete(previous):
        flip(layout.previous, f"{layout.releases.name}/{previous}")
    flip(layout.current, f"{layout.releases.name}/{sha}")
    return before


def health_gate(ctx: Context, version: str | None, sha: str | None, timeout: float) -> Gate:
    """Poll /health/ready until it is 200 and reports `version` and `sha`, or time out."""
    layout, system = ctx.layout, ctx.system
    started = system.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    while True:
        status, body, error = system.probe(layout.port, "/health/ready", timeout=1.0)
        if status == 200 and isinstance(body, dict):
            seen = (body.get("version"), body.get("commit"))
            if (version is None or seen[0] == version) and (sha is None or seen[1] == sha):
                return {"healthy": True, "seconds": _since(ctx, started), "body": body}
            last = (
                f"serving version {seen[0]} commit {str(seen[1])[:12]}, "
                f"expected {version} {str(sha)[:12]}"
            )
        elif status:
            reason = body.get("reason") if isinstance(body, dict) else None
            last = f"/health/ready answered {status}" + (f": {reason}" if reason else "")
        else:
            last = f"/health/ready not answering ({error})"
        state = system.unit_state(layout.unit)
        if state.get("ActiveState") == "failed":
            reason = f"the unit failed ({state.get('Result')}); {last}"
            return {"healthy": False, "reason": reason, "seconds": _since(ctx, started)}
        if system.monotonic() >= deadline:
            reason = f"not healthy within {timeout:.0f} s: {last}"
            return {"healthy": False, "reason": reason, "seconds": _since(ctx, started)}
        system.sleep(0.02)


def _since(ctx: Context, started: float) -> float:
    return round(ctx.system.monotonic() - started, 3)


def restart(ctx: Context, req: RestartRequest) -> Gate:
    """Put release `req["sha"]` (what `current` names) in and run the health gate: handed the
    running service's socket when both releases can (`handover`), else a restart."""
    started = ctx.system.monotonic()
    changes, why_not = units_for(ctx, req)
    if why_not is None:
        handed = handover.hand_over(ctx, req["sha"], float(req["timeout"]))
        return gate_after_hand_over(ctx, req, handed, changes)
    return restart_now(ctx, req, why_not, changes, started)


def units_for(
    ctx: Context, req: RestartRequest, *, hold: bool = False
) -> tuple[list[str], str | None]:
    """Install the units `req` brings and the boot-time recovery: what changed, and why the
    release must be restarted rather than handed the socket (None: it can be handed it)."""
    layout, system = ctx.layout, ctx.system
    changes = units.refresh(ctx, req["units"], req.get("settings"))
    system.systemctl("reset-failed", f"{layout.unit}.service")
    changes += units.ensure_socket(ctx)
    why_not = handover.refusal(ctx, req["sha"], units_changed=bool(changes), hold=hold)
    changes += recovery.install(layout)
    return changes, why_not


def gate_after_hand_over(
    ctx: Context, req: RestartRequest, handed: Gate, changes: list[str]
) -> Gate:
    """The health gate of a release just handed the socket (what is left of the timeout)."""
    if not handed["healthy"]:
        return {**handed, "restart_seconds": handed["seconds"], "changes": changes}
    timeout = float(req["timeout"])
    gate = health_gate(ctx, req["version"], req["sha"], max(1.0, timeout - handed["seconds"]))
    gate["seconds"] = round(gate["seconds"] + handed["seconds"], 3)
    gate["restart_seconds"] = handed["seconds"]
    gate["changes"] = changes
    gate["how"] = f"handed the socket over in {handed['seconds']:.2f} s"
    return gate


def restart_now(
    ctx: Context, req: RestartRequest, why_not: str, changes: list[str], started: float
) -> Gate:
    """Restart the unit on what `current` names and run the health gate."""
    layout, system = ctx.layout, ctx.system
    timeout = float(req["timeout"])
    code, error = system.systemctl("restart", f"{layout.unit}.service", timeout=120)
    if code != 0:
        reason = f"systemctl restart failed: {error or code}"
        return {
            "healthy": False,
            "seconds": 0.0,
            "restart_seconds": _since(ctx, started),
            "reason": reason,
        }
    restart_seconds = _since(ctx, started)
    gate = health_gate(ctx, req["version"], req["sha"], timeout)
    gate["restart_seconds"] = restart_seconds
    gate["changes"] = changes
    gate["how"] = f"restarted ({why_not})"
    return gate


def activate(ctx: Context, req: ActivateRequest) -> ActivateAnswer:
    """Switch and restart with the health gate in one round trip (rollbacks). A rollback the
    operator forced onto a release that cannot read the whole log leaves it the record that
    lets it skip those events (`readmodels.allow_forced`)."""
    layout, sha = ctx.layout, req["sha"]
    before = switch(layout, sha, req["previous"])
    reason = req.get("forced")
    # Only a forced rollback reads the log here (the operator checked it before the lock).
    skips = [f"{p.event_type} v{p.version}" for p in _unreadable(layout, sha)[1]] if reason else []
    if reason and skips:
        readmodels.allow_forced(layout, sha, reason, skips)
    gate = restart(ctx, req)
    if gate["healthy"]:
        readmodels.forget_forced(layout, sha)
    return {**gate, "before": before}


def go_live(ctx: Context, req: GoLiveRequest) -> GoLiveAnswer:
    """Switch to a built release, restart, health-gate; on failure switch back, restart and
    re-check. One step on the host, which also writes the operation's finish record, so it
    completes and is recorded even when the operator is gone (killed, cut off) mid-way."""
    # Recorded before the switch: a host that goes down before the end undoes it at boot.
    recovery.begin(ctx.layout, ctx.system.boot_id(), req["sha"], req["finish"])
    try:
        result = _go_live(ctx, req)
    except Exception as exc:
        finish(ctx.layout, req, FAILED, str(exc) or type(exc).__name__)
        recovery.end(ctx.layout)
        raise
    finish(ctx.layout, req, result["outcome"], result["reason"])
    recovery.end(ctx.layout)
    return result


def _go_live(ctx: Context, req: GoLiveRequest) -> GoLiveAnswer:
    before = switch(ctx.layout, req["sha"], req["previous"])
    return watched_or_back(ctx, req, restart(ctx, req), before)


def watched_or_back(
    ctx: Context, req: GoLiveRequest, gate: Gate, before: str | None
) -> GoLiveAnswer:
    """After the release was put in (`gate`): the watch, and on any failure back to the
    release that was live (`req["back_to"]`); the answer says how it ended."""
    layout = ctx.layout
    seconds = float(req.get("watch", 0))
    outcome, reason, journal = SUCCEEDED, None, []
    if gate["healthy"] and seconds > 0:
        try:
            turned = watch(ctx, seconds)
        except WatchCut as cut:
            turned, reason = None, f"watch cut short by the operator after {cut.seconds:.0f} s"
        if turned is not None:
            gate = {**gate, "healthy": False, "reason": f"during the {seconds:g} s watch: {turned}"}
    if not gate["healthy"]:
        reason = gate.get("reason", "unhealthy")
        journal = ctx.system.journal(layout.unit, 20)
        back_to = req["back_to"]
        cannot = _cannot_read(layout, back_to) if back_to else None
        if gate.get("serving_on") and back_to and before == back_to:
            # The hand-over failed before the switch: the running release never stopped.
            switch(layout, back_to, req["back_previous"])
            back = health_gate(ctx, req["back_version"], back_to, float(req["timeout"]))
            outcome = ROLLED_BACK if back["healthy"] else FAILED
            reason = f"{reason}; rolled back to {back_to[:12]}, which kept serving" + (
                "" if back["healthy"] else f", but is not healthy: {back.get('reason')}"
            )
        elif not back_to or not layout.is_complete(back_to):
            outcome, reason = FAILED, f"{reason}; no previous release to roll back to"
        elif cannot:
            outcome, reason = FAILED, f"{reason}; not rolled back: {cannot}"
        else:
            back = activate(
                ctx,
                {
                    "sha": back_to,
                    "version": req["back_version"],
                    "previous": req["back_previous"],
                    "timeout": req["timeout"],
                    "units": req["units"],
                },
            )
            if back["healthy"]:
                outcome, reason = ROLLED_BACK, f"{reason}; rolled back to {back_to[:12]}"
            else:
                outcome = FAILED
                reason = (
                    f"{reason}; the rollback to {back_to[:12]} is not healthy either: "
                    f"{back.get('reason')}"
                )
    if outcome == SUCCEEDED:
        # Kept until now: a failed deploy may still go back to a release forced onto this log.
        readmodels.forget_forced(layout, req["sha"])
    answer: GoLiveAnswer = {
        "healthy": outcome == SUCCEEDED,
        "outcome": outcome,
        "reason": reason,
        "journal": journal,
        "seconds": gate.get("seconds"),
        "before": before,
        "changes": gate.get("changes", []),
    }
    if "how" in gate:
        answer["how"] = gate["how"]
    return answer


def _unreadable(layout: Layout, sha: str) -> tuple[str | None, list[contract.Unreadable]]:
    """Release `sha`'s version, and the event types in this env's log it cannot read."""
    try:
        manifest = json.loads((layout.releases / sha / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, []
    return manifest.get("version"), contract.unreadable(
        contract.of_manifest(manifest), contract.log_versions(layout.data_dir / "events")
    )


def _cannot_read(layout: Layout, sha: str) -> str | None:
    """Why release `sha` cannot serve this env's event log, if it cannot (a release the
    operator forced onto this log already may: it skips those events)."""
    if readmodels.forced_release(layout) == sha:
        return None
    version, problems = _unreadable(layout, sha)
    return contract.explain(f"{version} ({sha[:12]})", problems[0]) if problems else None


def finish(layout: Layout, req: GoLiveRequest, outcome: str, reason: str | None) -> None:
    """The operation's closing record, completed here with what happened."""
    record: LogRecord = {**req["finish"], "outcome": outcome, "ended_at": utc_timestamp()}
    if reason:
        record["reason"] = reason
    deploylog.append(layout.log, [record])


def start(ctx: Context) -> None:
    """Start the env's socket and service."""
    for unit in (f"{ctx.layout.unit}.socket", f"{ctx.layout.unit}.service"):
        units.systemctl_checked(ctx.system, "start", unit, timeout=60)


def stop(ctx: Context, req: Empty) -> StopAnswer:
    """Stop the unit, and its socket: a listening socket would start it again on a request."""
    layout, system = ctx.layout, ctx.system
    names = [f"{layout.unit}.socket", f"{layout.unit}.service"]
    present = [u for u in names if (system.units_dir / u).exists()]
    if present:
        units.systemctl_checked(system, "stop", *present, timeout=60)
    return {"unit": system.unit_state(layout.unit)}


def journal(ctx: Context, req: JournalRequest) -> JournalAnswer:
    """The unit's last journal lines."""
    return {"lines": ctx.system.journal(ctx.layout.unit, int(req["lines"]))}

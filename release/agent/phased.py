"""Going live on an env of several hosts: the phases the operator drives on every host at once.

`activate.go_live` does everything on one host in one request. With several hosts no host may
switch before every one is ready, and every host must go back if any fails, so the same work
comes in three requests (docs/ARCHITECTURE.md, "Several hosts"):

- `go_ready`: install the units and start the new release beside the running one on its
  socket, held (`helionyx.handover`): ready, answering nothing. A release that cannot be handed
  the socket (units changed, nothing running) is restarted in at the switch instead.
- `go_switch`: the held successor takes over (or the restart); health gate; watch; a failure
  goes back to the release before, here, at once.
- `go_settle`: the env's verdict: keep the release, or go back; the finish record.

Between the requests the state is in the activation intent (`recovery`): a reboot undoes it at
boot, and an agent whose operator went away before `go_settle` undoes it itself (`Pending`).
"""

from __future__ import annotations

from . import activate, handover, priority, recovery
from .errors import AgentError
from .layout import Context, Layout
from .protocol import (
    FAILED,
    GO_READY,
    GO_SETTLE,
    ROLLED_BACK,
    SUCCEEDED,
    ActivationIntent,
    Answer,
    Empty,
    Gate,
    GoLiveAnswer,
    Message,
    ReadyAnswer,
    ReadyRequest,
    SettleAnswer,
    SettleRequest,
    Staged,
    Target,
)
from .system import System


def go_ready(ctx: Context, req: ReadyRequest) -> ReadyAnswer:
    """Make release `req["sha"]` ready to take over, without switching anything clients see."""
    layout, system = ctx.layout, ctx.system
    started = system.monotonic()
    recovery.begin(layout, system.boot_id(), req["sha"], req["finish"])
    staged: Staged = {
        "phase": "ready",
        "request": req,
        "attempt": None,
        "running": None,
        "restart_why": None,
        "changes": [],
    }
    _keep(layout, staged)
    try:
        changes, why_not = activate.units_for(ctx, req, hold=True)
        staged = {**staged, "changes": changes, "restart_why": why_not}
        if why_not is not None:
            _keep(layout, staged)
            how = f"restarted at the switch ({why_not})"
            return _ready(ctx, started, how, changes)
        activate.switch(layout, req["sha"], req["previous"])
        asked = handover.ask(ctx, req["sha"], float(req["timeout"]), hold=float(req["hold"]))
        if isinstance(asked, str):
            failed: str | None = asked
        else:
            # Kept before the wait: an operator gone meanwhile means the successor is aborted.
            _keep(layout, {**staged, "attempt": asked.attempt, "running": asked.running})
            deadline = started + float(req["timeout"]) + handover.SLACK_SECONDS
            failed = handover.ready(ctx, asked, deadline)
    except Exception:
        _back_to_before(ctx)
        raise
    if failed is None:
        priority.hurry()  # the switch is next, on every host at once
        how = f"ready beside the running release in {_since(ctx, started):.2f} s"
        return _ready(ctx, started, how, changes)
    # The running release already dropped the successor (and says why): nothing to abort.
    _back_to_before(ctx, abort=False)
    return {
        "ready": False,
        "reason": f"not ready beside the running release: {failed}",
        "seconds": _since(ctx, started),
        "how": "held beside the running release",
        "changes": changes,
        "journal": system.journal(layout.unit, 20),
    }


def go_switch(ctx: Context, req: Empty) -> GoLiveAnswer:
    """Put the ready release in (the held successor takes over, or a restart), run its gate
    and watch; a failure goes back here at once (the operator then settles every host)."""
    layout, system = ctx.layout, ctx.system
    intent, staged = _staged(layout)
    if staged["phase"] != "ready":
        raise AgentError(f"release {intent['sha'][:12]} is not ready to switch to here")
    live = staged["request"]
    started = system.monotonic()
    if staged["attempt"] is not None:
        asked = handover.Asked(staged["attempt"], staged["running"])
        refused = handover.tell(ctx, asked, "switch")
        priority.calm()
        deadline = started + float(live["timeout"]) + handover.SLACK_SECONDS
        handed: Gate = (
            {"healthy": False, "seconds": 0.0, "reason": refused, "serving_on": True}
            if refused
            else handover.taken(ctx, asked, started, deadline)
        )
        gate = activate.gate_after_hand_over(ctx, live, handed, staged["changes"])
        before = intent["before"]
    else:
        before = activate.switch(layout, live["sha"], live["previous"])
        why = staged["restart_why"] or "no hand-over"
        gate = activate.restart_now(ctx, live, why, staged["changes"], started)
    answer = activate.watched_or_back(ctx, live, gate, before)
    _keep(layout, {**staged, "phase": "switched" if answer["outcome"] == SUCCEEDED else "back"})
    return answer


def go_settle(ctx: Context, req: SettleRequest) -> SettleAnswer:
    """The env's verdict on this host: keep the release, or go back to the one before; then
    the operation's finish record, and the activation is over."""
    layout = ctx.layout
    priority.calm()
    intent, staged = _staged(layout)
    live = staged["request"]
    outcome, reason, healthy = req["outcome"], req["reason"], True
    if req["keep"] and staged["phase"] != "switched":
        raise AgentError(f"release {intent['sha'][:12]} is not live here: it cannot be kept")
    if not req["keep"] and staged["phase"] == "ready":
        _back_to_before(ctx)
    elif not req["keep"] and staged["phase"] == "switched":
        back_to = live["back_to"]
        if back_to is None or not layout.is_complete(back_to):
            outcome, healthy = FAILED, False
            reason = f"{reason}; no previous release to go back to here"
        else:
            back = activate.activate(
                ctx,
                {
                    "sha": back_to,
                    "version": live["back_version"],
                    "previous": live["back_previous"],
                    "timeout": live["timeout"],
                    "units": live["units"],
                },
            )
            healthy = back["healthy"]
            if not healthy:
                outcome = FAILED
                reason = (
                    f"{reason}; back on {back_to[:12]} here, but not healthy: {back.get('reason')}"
                )
    activate.finish(layout, live, outcome, reason)
    recovery.end(layout)
    return {"outcome": outcome, "reason": reason, "healthy": healthy}


class Pending:
    """The phased activations one agent session began and has not settled: undone when the
    operator goes away (stdin closes) before settling them."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}

    def saw(self, message: Message, answer: Answer) -> None:
        """Note a request this session answered."""
        target, command = message["target"], message["command"]
        if command == GO_READY.name:
            self._targets[target["base_dir"]] = target
        elif command == GO_SETTLE.name and answer.get("ok"):
            self._targets.pop(target["base_dir"], None)

    def abandon(self, system: System) -> None:
        """The operator is gone: settle what it left as a failure (nothing is kept)."""
        for target in self._targets.values():
            layout = Layout.of(target)
            intent = recovery.pending(layout)
            staged = intent.get("staged") if intent else None
            if intent is None or staged is None or intent["boot_id"] != system.boot_id():
                continue
            switched = staged["phase"] != "ready"
            reason = "the operator went away before every host " + (
                "was healthy on the release" if switched else "was ready to switch"
            )
            go_settle(
                Context(layout, system),
                {"keep": False, "outcome": ROLLED_BACK if switched else FAILED, "reason": reason},
            )
        self._targets.clear()


def _ready(ctx: Context, started: float, how: str, changes: list[str]) -> ReadyAnswer:
    return {
        "ready": True,
        "reason": None,
        "seconds": _since(ctx, started),
        "how": how,
        "changes": changes,
        "journal": [],
    }


def _back_to_before(ctx: Context, *, abort: bool = True) -> None:
    """Not switched after all: the held successor told to go, `current` back where it was."""
    layout = ctx.layout
    intent = recovery.pending(layout)
    if intent is None:
        return
    staged = intent.get("staged")
    if abort and staged is not None and staged["attempt"] is not None:
        handover.tell(ctx, handover.Asked(staged["attempt"], staged["running"]), "abort")
    before = intent["before"]
    if before and layout.is_complete(before) and layout.link_target(layout.current) != before:
        activate.switch(layout, before, intent["before_previous"])
    if staged is not None:
        _keep(layout, {**staged, "phase": "back"})


def _staged(layout: Layout) -> tuple[ActivationIntent, Staged]:
    intent = recovery.pending(layout)
    staged = intent.get("staged") if intent else None
    if intent is None or staged is None:
        raise AgentError("no phased activation is under way here")
    return intent, staged


def _keep(layout: Layout, staged: Staged) -> None:
    """Where the activation stands, in its intent (durably, like the intent itself)."""
    intent = recovery.pending(layout)
    if intent is not None:
        recovery.record(layout, {**intent, "staged": staged})


def _since(ctx: Context, started: float) -> float:
    return round(ctx.system.monotonic() - started, 3)

"""The staging gate: an env that `requires` another takes only a release that has been good
there — deployed, through its health gate, and serving for `soak` seconds without failing."""

from __future__ import annotations

from datetime import datetime

from release.agent import deploylog
from release.agent.protocol import STATE, LogRecord
from release.errors import UsageError
from release.hosts.context import Context
from release.hosts.fleet import each, values
from release.hosts.host import HostState, target_of
from release.hosts.operation import Operation, reading


def _at(record: LogRecord) -> float:
    return datetime.fromisoformat(str(record.get("ended_at"))).timestamp()


def refusal(required: HostState, sha: str, *, where: str, soak: float, now: float) -> str | None:
    """Why `sha` may not go on from env `where` (as `required` shows it), or None if it may."""
    short, current = sha[:12], required.current
    finishes = deploylog.finishes(required.log)
    good = [i for i, r in enumerate(finishes) if r.get("sha") == sha and deploylog.went_live(r)]
    start = good[-1] if good else -1
    # Its last failure there since it last went live (or at all): a deploy rolled back by its
    # gate or its watch never went live successfully, and that is what to say.
    for record in reversed(finishes[start + 1 :]):
        if record.get("sha") == sha and deploylog.failed(record):
            return f"{short} failed on {where} at {record.get('ended_at')}"
    if not good:
        return f"{short} was never deployed to {where} successfully"
    since = _at(finishes[start])
    # It served from its switch until the next release went live there (or until now).
    later = [r for r in finishes[start + 1 :] if r.get("sha") != sha and deploylog.went_live(r)]
    until = _at(later[0]) if later and current != sha else now
    served = max(0.0, until - since)
    if served < soak:
        left = soak - served
        if current != sha:
            return (
                f"{short} served on {where} for {served:.0f} s of the {soak:.0f} s soak before "
                "another release replaced it"
            )
        return (
            f"{short} has served on {where} for {served:.0f} s of the {soak:.0f} s soak: "
            f"{left:.0f} s to go"
        )
    return None


def enforce(op: Operation, sha: str) -> None:
    """Refuse `sha` for `op.env` unless it has been good on the env it requires (or `forced`,
    which is recorded with what it skipped). Read through the operation's own agent when the
    required env is on the same host (the agent serves any env of its host)."""
    env, forced = op.env, op.ctx.options.forced
    if not env.requires:
        return
    required = op.ctx.peer(env.requires)
    with op.timed("gate", f"good on {required.name} for {env.soak:.0f} s"):
        now = op.ctx.clock.time()
        same_host = (required.host, required.ssh_port) == (env.host, env.ssh_port)
        if required.several:
            # Good on every host of the required env: the first host that says no is named.
            states = values(each(op.ctx.on(required), _state), "the staging gate")
            whys = [
                f"{why} (host {host})"
                for host, there in zip(required.hosts, states, strict=True)
                if (why := refusal(there, sha, where=required.name, soak=env.soak, now=now))
            ]
            why = whys[0] if whys else None
        elif same_host and op.host is not None:
            there = HostState.of(op.host.call(STATE({}), target=target_of(required)))
            why = refusal(there, sha, where=required.name, soak=env.soak, now=now)
        else:
            there = _state(op.ctx.on(required))
            why = refusal(there, sha, where=required.name, soak=env.soak, now=now)
    if why is None:
        return
    if not forced:
        raise UsageError(
            f"{env.name} takes only what {required.name} verified: {why}",
            hint=f"deploy it to {required.name} first (make promote FROM={required.name} "
            f'TO={env.name} then moves it on); FORCE=1 REASON="…" overrides, recorded',
            env=env.name,
        )
    op.context["forced"] = forced
    op.context["skipped"] = why
    op.reporter.note(f"gate skipped (FORCE=1: {forced}): {why}")


def _state(ctx: Context) -> HostState:
    with reading(ctx, "the staging gate") as other:
        return other.state()

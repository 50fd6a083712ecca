"""Deploy: the state machine of docs/ARCHITECTURE.md.

resolve → fetch + verify → connect → lock → (no-op if already current and healthy) → prepare →
upload → build releases/.<sha>.partial → rename to releases/<sha> → flip `current` → hand-over
(or restart) → health gate → prune → unlock. A failure before the flip leaves the host as it
was; a failure after it flips back to the previous release, puts it back in and re-checks it.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from release.agent.protocol import (
    CUT_WATCH,
    FAILED,
    GO_LIVE,
    INSTALL,
    MIGRATE,
    NOOP,
    PREPARE,
    PRUNE,
    ROLLED_BACK,
    SUCCEEDED,
    GoLiveAnswer,
    InstallRequest,
    MigrateRequest,
    PrepareAnswer,
    StateRequest,
)
from release.artifacts.artifact import Artifact, contract_of, targets_of
from release.artifacts.releasing import Workspace, verify_from
from release.artifacts.store import ReleaseInfo, Store
from release.errors import (
    ConnectionFailed,
    HostError,
    OperationFailed,
    ReleaseError,
    RequestNotSent,
    UsageError,
)
from release.hosts.context import Context
from release.hosts.fleet import each, values
from release.hosts.gate import enforce
from release.hosts.host import Host, HostState
from release.hosts.notify import tell
from release.hosts.operation import Operation, one_host, reading
from release.hosts.plan import Plan, needs_rebuild, offering, plan, require_served
from release.hosts.units import render_units, require_no_drift

#: What a plan reads from the host besides the state every operation reads.
PLAN_STATE: StateRequest = {"details": True, "count_events": True}


@dataclass(frozen=True)
class DeployResult:
    """How a deploy ended."""

    outcome: str
    version: str
    sha: str
    previous_sha: str | None
    notices: tuple[str, ...] = ()


def serving_sha(state: HostState) -> str | None:
    """The commit the running service reports, if it answers ready."""
    body = state.health.get("ready_body") if state.health.get("ready_status") == 200 else None
    return body.get("commit") if isinstance(body, dict) else None


def fetch_verified(ctx: Context, info: ReleaseInfo, store: Store) -> Artifact:
    """Download and verify a resolved release locally, before anything touches the host."""
    env = ctx.env
    artifact = verify_from(Workspace(ctx.root), info.version, store, ctx.progress)
    if artifact.manifest.tag is None and not env.allow_dev_builds:
        raise UsageError(
            f"{artifact.version} is an unpublished dev build; "
            f"{env.name} takes tagged releases only",
            hint="cut one with make release VERSION=X.Y.Z, publish it, and deploy that version",
            env=env.name,
            release=artifact.version,
        )
    return artifact


def deploy(
    ctx: Context, ref: str, store: Store, *, promoted_from: str | None = None
) -> DeployResult:
    """Deploy release `ref` (version, tag or SHA) from `store` to the context's env; MIGRATE=1
    allows building a new read model beside the one in use when the release needs one."""
    # An unknown version is refused before anything is announced or dialled.
    env, reporter, options = ctx.env, ctx.reporter, ctx.options
    one_host(env, "promote" if promoted_from else "deploy")
    started = time.monotonic()
    info = store.find(ref)
    what = f"promotion from {promoted_from} of" if promoted_from else "deploy of"
    reporter.headline(f"deploying {info.version} ({info.sha[:12]}) to {env.name} on {env.host}")
    units = render_units(ctx.root, env)
    with Operation(ctx, "deploy", units) as op:
        # The SSH handshake runs while the artifact is checked; nothing is sent until it passes.
        op.dial()
        with op.timed("fetch + verify", info.version):
            artifact = fetch_verified(ctx, info, store)
        sha, version = artifact.commit, artifact.version
        ahead = look_ahead(op, artifact)
        if options.forced is not None and not options.forced.strip():
            raise UsageError("FORCE=1 needs a reason", hint='add REASON="why" (it is recorded)')
        enforce(op, sha)
        if promoted_from:
            op.context["promoted_from"] = promoted_from
        with op.locked(f"deploy {version}") as state:
            op.context.update(
                {
                    "version": version,
                    "sha": sha,
                    "previous_sha": state.current,
                    "source": store.label,
                }
            )
            if state.current == sha and serving_sha(state) == sha:
                op.finish = op.finish_event(NOOP)
                reporter.note(f"{version} ({sha[:12]}) is already deployed and healthy")
                # Killed deploys leave releases behind too: a no-op keeps retention as well.
                prune_and_report(op, sha)
                return DeployResult(NOOP, version, sha, state.current, tuple(op.notices))
            rebuild = rebuild_needed(op, state, artifact, projections=ahead.projections)
            try:
                done = _install_and_go_live(
                    op, artifact, state, rebuild, estimate=ahead.rebuild_seconds
                )
            except ReleaseError as exc:
                if not op.finished_on_host:
                    op.finish = op.finish_event(FAILED, str(exc))
                raise
            release = f"{version} ({sha[:12]})"
            if done["outcome"] != SUCCEEDED:
                outcome = "rolled back" if done["outcome"] == ROLLED_BACK else "failed"
                told = f"{outcome}: {done['reason']}"
                tell(env, what, release, told, started=started, warn=reporter.note)
                raise OperationFailed(
                    f"deploy of {version} failed: {done['reason']}",
                    details=done["journal"],
                    env=env.name,
                    host=env.host,
                )
            prune_and_report(op, sha)
            tell(env, what, release, "succeeded", started=started, warn=reporter.note)
            return DeployResult(SUCCEEDED, version, sha, state.current, tuple(op.notices))


def look_ahead(op: Operation, artifact: Artifact) -> Plan:
    """Read the host before the lock, print the plan, and refuse what needs the operator's
    say-so (a new read model without MIGRATE=1, a changed set-up without APPLY=1): a refused
    deploy leaves the host exactly as it was."""
    env = op.env
    with offering(artifact):
        host = op.connect()
    with op.timed("plan"), offering(artifact):
        state = host.state(PLAN_STATE)
        ahead = plan(op.ctx.root, env, artifact, state, changelog=False)
    for line in ahead.header():
        op.reporter.note(line)
    require_served(env, artifact, state)
    op.settings = require_no_drift(env, state, apply=op.ctx.options.apply_units)
    if ahead.projections_rebuild and not op.ctx.options.migrate:
        raise UsageError(
            f"{artifact.version} needs a new read model ({ahead.projections})",
            hint=f"deploy with MIGRATE=1: it is built from the event log "
            f"({ahead.events_in_log} events) beside the one {ahead.current_version} uses, "
            "which keeps serving meanwhile",
            env=env.name,
        )
    return ahead


def rebuild_needed(
    op: Operation, state: HostState, artifact: Artifact, *, projections: str
) -> bool:
    """Whether the release's read model must be built (checked again under the lock)."""
    running = state.releases.get(state.current or "")
    rebuild = needs_rebuild(
        state, running.data_contract if running else None, contract_of(artifact.manifest)
    )
    if rebuild and not op.ctx.options.migrate:
        raise UsageError(
            f"{artifact.version} needs a new read model (another deploy changed the host)",
            hint="run make plan again, then deploy with MIGRATE=1",
            env=op.env.name,
        )
    if rebuild:
        op.context["migrated"] = projections
    return rebuild


def stage(
    op: Operation,
    artifact: Artifact,
    state: HostState,
    rebuild: bool,
    *,
    estimate: float | None = None,
) -> None:
    """Everything before the switch: clear leftovers, upload what the host lacks, build the
    release offline and smoke-check it, build its read model beside the one in use."""
    assert op.host is not None
    sha = artifact.commit
    prepared = op.step("prepare", PREPARE({"sha": sha}))
    if prepared["removed"]:
        op.reporter.note(
            f"removed leftovers of an interrupted deploy: {', '.join(prepared['removed'])}"
        )
    if prepared["complete"]:
        op.reporter.note(f"release {sha[:12]} is already on the host; reusing it")
    else:
        _upload_and_build(op, artifact, state, prepared)
    if rebuild:
        op.reporter.note(
            "read model: building it from the event log beside the one in use "
            "(the current release serves meanwhile)"
        )
        migrating: MigrateRequest = {"sha": sha}
        if estimate:
            migrating["estimate"] = round(estimate, 1)
        beside = "built from the event log beside the one in use"
        model = op.step("read model", MIGRATE(migrating), beside)
        op.reporter.note(f"read model: {model['output']} in {model['seconds']:.2f} s")


def _install_and_go_live(
    op: Operation,
    artifact: Artifact,
    state: HostState,
    rebuild: bool,
    *,
    estimate: float | None = None,
) -> GoLiveAnswer:
    stage(op, artifact, state, rebuild, estimate=estimate)
    sha, version, env = artifact.commit, artifact.version, op.env
    previous = state.current if state.current != sha else state.previous
    back_to = state.current if state.current in state.releases else None
    detail = (
        f"current -> releases/{sha[:12]}, hand-over or restart, "
        f"health (timeout {env.health_timeout:.0f} s)"
    )
    if env.watch:
        detail += f", watch {env.watch:g} s"
    # From here the host finishes the operation and records it, whatever happens to us.
    op.finished_on_host = True
    try:
        with op.timed("go live", detail):
            done = op.call(
                "go live",
                GO_LIVE(
                    {
                        "sha": sha,
                        "version": version,
                        "previous": previous,
                        "timeout": env.health_timeout,
                        "units": op.units,
                        "settings": op.settings or {},
                        "back_to": back_to,
                        "back_version": state.version_of(back_to) if back_to else None,
                        "back_previous": state.previous,
                        "finish": op.finish_event(SUCCEEDED),
                        "watch": env.watch,
                    }
                ),
            )
    except RequestNotSent:
        op.finished_on_host = False
        raise
    except KeyboardInterrupt:
        if env.watch:
            _cut_watch(op)
        raise
    if done["outcome"] == SUCCEEDED:
        op.reporter.note(f"healthy after {done['seconds'] or 0:.2f} s")
    elif done["outcome"] == ROLLED_BACK:
        op.reporter.note(f"unhealthy, rolled back on the host: {done['reason']}")
    return done


def _upload_and_build(
    op: Operation, artifact: Artifact, state: HostState, prepared: PrepareAnswer
) -> None:
    """Send what the host lacks (not what it holds, not wheels it cannot use) and build it."""
    assert op.host is not None
    sha, env = artifact.commit, op.env
    reuse = shared_files(artifact, prepared["donor_sums"])
    absent = unused_wheels(artifact, state)
    archive = f"{env.releases_dir}/.{sha}.upload"
    kept = {*reuse, *absent}
    sent = sum(f.size for f in artifact.manifest.files if f.path not in kept)
    detail = (f"{sent / 1e6:.1f} MB" if sent >= 1e6 else f"{sent / 1e3:.0f} kB") + (
        f", {len(reuse)} identical file(s) linked from {str(prepared['donor'])[:12]}"
        if reuse
        else ""
    )
    if absent:
        detail += f", {len(absent)} wheel(s) for other hosts left out"
    with op.timed("upload", detail), tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "artifact.tar"
        _bundle(artifact, bundle, skip=kept)
        op.host.remote.put(bundle, archive)
    install: InstallRequest = {
        "sha": sha,
        "archive": archive,
        "donor": prepared["donor"] if reuse else None,
        "reuse": reuse,
        "absent": absent,
    }
    built = op.step("build", INSTALL(install), "checksums, venv offline, smoke check")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in built["timings"].items())
    op.reporter.note(f"build: {timings}")


def _cut_watch(op: Operation) -> None:
    """Ctrl-C during go live: ask the host, over a second agent, to end the watch now and
    leave the release in place (the first agent then answers, and the lock goes back)."""
    op.reporter.note("interrupted: ending the watch early; the release stays in place")
    side = Host(op.ctx.remote(), op.env)
    try:
        side.call(CUT_WATCH({}))
    except (ConnectionFailed, HostError) as exc:
        op.reporter.note(f"could not end the watch early ({exc.message}); it runs to its end")
    finally:
        side.close()
        side.remote.close()


def prune_and_report(op: Operation, sha: str) -> None:
    """Retention on the host (which decides what goes: `release.agent.prune`)."""
    keep = op.env.keep_releases
    pruned = op.step("prune", PRUNE({"keep": keep, "protect": [sha]}), f"keep {keep}")
    if pruned["removed"]:
        names = ", ".join(p[:12] for p in pruned["removed"])
        op.reporter.note(f"pruned {len(pruned['removed'])} old release(s): {names}")
    if pruned["read_models"]:
        models = ", ".join(pruned["read_models"])
        op.reporter.note(f"removed read model(s) no release here uses: {models}")


def unused_wheels(artifact: Artifact, state: HostState) -> list[str]:
    """The artifact's wheels this host cannot install: they stay here."""
    if state.platform is None:
        return []
    paths = [entry.path for entry in artifact.manifest.files]
    return targets_of(artifact.manifest).unused(state.platform, paths)


def shared_files(artifact: Artifact, donor_sums: dict[str, str]) -> list[str]:
    """Files of the artifact the host already holds byte for byte in another release."""
    return sorted(
        entry.path
        for entry in artifact.manifest.files
        if donor_sums.get(entry.path) == entry.sha256
    )


def _bundle(artifact: Artifact, target: Path, skip: set[str]) -> None:
    """One uncompressed tar of the verified artifact but `skip`: one SFTP transfer, not dozens."""
    with tarfile.open(target, "w") as bundle:
        for path in sorted(artifact.directory.rglob("*")):
            name = path.relative_to(artifact.directory).as_posix()
            if path.is_file() and name not in skip:
                bundle.add(path, arcname=name)


def previews(ctx: Context, ref: str, store: Store) -> list[Plan]:
    """`make plan` on every host of the env (the artifact fetched and verified once)."""
    if not ctx.env.several:
        return [preview(ctx, ref, store)]
    artifact = fetch_verified(ctx, store.find(ref), store)

    def one(on: Context) -> Plan:
        with offering(artifact), reading(on, "plan") as host:
            state = host.state({**PLAN_STATE, "events": True})
        require_served(on.env, artifact, state)
        return plan(on.root, on.env, artifact, state)

    return values(each(ctx, one), "plan")


def preview(ctx: Context, ref: str, store: Store) -> Plan:
    """`make plan`: what deploying `ref` would do, read-only (no lock, nothing written)."""
    one_host(ctx.env, "plan")
    info = store.find(ref)
    artifact = fetch_verified(ctx, info, store)
    with offering(artifact), reading(ctx, "plan") as host:
        state = host.state({**PLAN_STATE, "events": True})
    require_served(ctx.env, artifact, state)
    return plan(ctx.root, ctx.env, artifact, state)

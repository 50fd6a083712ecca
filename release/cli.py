"""`python -m release`: the one place that prints results and maps errors to exit codes."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from release import show
from release.artifacts import contract, releasing
from release.artifacts.artifact import contract_of
from release.artifacts.store import DEFAULT_STORE, Store, open_store
from release.errors import ReleaseError
from release.hosts import backup, deploy, environments, promote, rollback, service, status
from release.hosts.units import render_units
from release.progress import NoProgress, Progressable, TransferProgress


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release", description="Helionyx releases")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    sub = parser.add_subparsers(dest="command", required=True)

    cut = sub.add_parser("release", help="tag a new version and build its artifact")
    cut.add_argument("--version", help="X.Y.Z or vX.Y.Z")
    cut.add_argument("--bump", help="patch, minor or major")

    build = sub.add_parser("artifact", help="build the artifact for HEAD into the local store")
    build.add_argument("--ref", default="HEAD", help="commit to build (default HEAD)")

    for name, text in (
        ("publish", "publish a built artifact to a store"),
        ("verify", "download a release into the cache and check it"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--version", required=True, help="version, tag or SHA")
        command.add_argument("--store", default=DEFAULT_STORE, help="dir:PATH or github:OWNER/REPO")

    guard = sub.add_parser("guard", help="refuse a tag not on main or without CHANGELOG section")
    guard.add_argument("--tag", required=True)
    guard.add_argument("--branch", default="origin/main")
    reproduce = sub.add_parser("reproduce", help="build a commit in two clones; must be identical")
    reproduce.add_argument("--ref", default="HEAD")

    listing = sub.add_parser("list", help="list the releases a store holds")
    listing.add_argument("--store", default=DEFAULT_STORE)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    _host_parsers(sub)
    return parser


def _host_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that act on an environment's host."""

    def host_command(name: str, text: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        command.add_argument("--env", required=True, help="dev, staging or live")
        return command

    setup = host_command("setup-host", "prepare an environment on its host (idempotent)")
    setup.add_argument("--env-file", type=Path, help="settings to upload (default .env.<env>)")
    deploy = host_command("deploy", "deploy a release to an environment")
    deploy.add_argument("--version", required=True, help="version, tag or SHA")
    deploy.add_argument("--store", default=DEFAULT_STORE)
    deploy.add_argument(
        "--migrate", action="store_true", help="build a new read model when the release needs one"
    )

    plan = host_command("plan", "what deploying a release would do (read-only)")
    plan.add_argument("--version", required=True, help="version, tag or SHA")
    plan.add_argument("--store", default=DEFAULT_STORE)
    plan.add_argument("--format", choices=("table", "json"), default="table")
    back = host_command("rollback", "return to the previous good release, or to --to")
    back.add_argument("--to", help="version, tag or SHA on the host")
    back.add_argument("--force", action="store_true", help="even if it cannot read the log")
    back.add_argument("--reason", help="why --force (recorded in the deploy log)")
    releases = host_command("releases", "list releases on the host")
    releases.add_argument("--format", choices=("table", "json"), default="table")
    text = "show what runs (without --env: every environment)"
    every = sub.add_parser("status", help=text, description=text)
    every.add_argument("--env", help="dev, staging or live (default: all)")
    every.add_argument("--format", choices=("table", "json"), default="table")
    logs = host_command("logs", "show the service journal")
    logs.add_argument("--lines", type=int, default=100)
    logs.add_argument("--follow", action="store_true")
    restart = host_command("restart", "restart the service and check its health")
    text = "deploy to --to exactly the release --from serves now (verified again, never rebuilt)"
    promote = sub.add_parser("promote", help=text, description=text)
    promote.add_argument("--from", dest="source", required=True, help="e.g. staging")
    promote.add_argument("--to", dest="target", required=True, help="e.g. live")
    promote.add_argument("--store", default=DEFAULT_STORE)
    promote.add_argument(
        "--migrate", action="store_true", help="build a new read model when the release needs one"
    )
    for command in (deploy, promote):
        command.add_argument("--force", action="store_true", help="skip the staging gate")
        command.add_argument("--reason", help="why --force (recorded in the deploy log)")
    for command in (deploy, back, restart, promote):
        command.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for a held lock (0: refuse)"
        )
        command.add_argument(
            "--apply-units", action="store_true", help="apply a changed host set-up (units)"
        )
    host_command("stop", "stop the service")
    unlock = host_command("unlock", "clear a lock whose holder is gone")
    unlock.add_argument("--force", action="store_true", help="holder on another machine is gone")
    backup = host_command("backup", "snapshot the environment's data on its host while it runs")
    backup.add_argument("--pull", type=Path, help="also copy the backup under this directory")
    backups = host_command("backups", "list the environment's backups on its host")
    backups.add_argument("--format", choices=("table", "json"), default="table")
    restore = host_command("restore", "restore a backup (ID or ENV/ID) into the environment")
    restore.add_argument("--from", dest="source", required=True, help="ID or ENV/ID")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A cron job or LC_ALL=C may give an ASCII stdout; a release name must not end the run.
        sys.stdout.reconfigure(errors="backslashreplace")
    ws = releasing.Workspace(args.repo.resolve())
    progress: Progressable = TransferProgress() if sys.stderr.isatty() else NoProgress()
    try:
        return _dispatch(args, ws, progress)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.details:
            print("last journal lines:", file=sys.stderr)
            for line in exc.details:
                print(f"  {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        env = getattr(args, "env", None)
        print(
            "interrupted" + (f"; make status ENV={env} shows where it stands" if env else ""),
            file=sys.stderr,
        )
        return 130


def _store(spec: str, ws: releasing.Workspace) -> Store:
    if spec.startswith("dir:") and not Path(spec[4:]).is_absolute():
        spec = f"dir:{ws.root / spec[4:]}"
    return open_store(spec, notify=_note, cache=ws.cache / "github-assets")


def _note(message: str) -> None:
    """What a store tells the operator while it works (waits, a moved repository): stderr."""
    print(message, file=sys.stderr, flush=True)


def _dispatch(args: argparse.Namespace, ws: releasing.Workspace, progress: Progressable) -> int:
    if args.command == "release":
        done = releasing.cut(ws, args.version, args.bump, datetime.now(UTC).date())
        print(f"released {done.tag} at {done.commit}")
        print(f"artifact: {done.artifact.directory}")
        print(f"next: git push origin {ws.git.branch()} {done.tag}")
        return 0
    if args.command == "artifact":
        built = releasing.build_head(ws, args.ref)
        kind = "release" if built.manifest.is_release else "dev build"
        print(f"built {kind} {built.version} ({built.commit})")
        print(f"artifact: {built.directory}")
        return 0
    if args.command == "publish":
        store = _store(args.store, ws)
        outcome = releasing.publish(ws, args.version, store, progress)
        print(f"{store.label}: {args.version}: {outcome.value}")
        return 0
    if args.command == "verify":
        store = _store(args.store, ws)
        verified = releasing.verify_from(ws, args.version, store, progress)
        count = len(verified.manifest.files) + 1
        print(f"verified {verified.version} ({verified.commit}): {count} files match")
        print(f"  data contract: {contract.describe(contract_of(verified.manifest))}")
        return 0
    if args.command == "guard":
        commit = releasing.guard(ws, args.tag, args.branch)
        print(f"{args.tag} ({commit}) is on {args.branch} and has release notes")
        return 0
    if args.command == "reproduce":
        same = releasing.reproduce(ws, args.ref)
        print(f"two builds of {same.commit} are identical ({same.version})")
        return 0
    if args.command == "list":
        return show.releases(_store(args.store, ws).releases(), args.format)
    if args.command == "status" and not args.env:
        return _status_all(ws, args.format)
    if args.command == "promote":
        return _promote(args, ws, progress)
    return _host_command(args, ws, progress)


def _host_command(args: argparse.Namespace, ws: releasing.Workspace, progress: Progressable) -> int:
    env = environments.load(ws.root, args.env)
    reporter = show.PrintReporter()
    started = time.monotonic()
    if args.command == "setup-host":
        # setup validates the settings with the service's own config (pydantic): load it only here.
        from release.hosts import setup  # noqa: PLC0415

        env_file = args.env_file or ws.root / f".env.{env.name}"
        done = setup.setup_host(ws.root, env, env_file)
        for line in done or ["nothing to change"]:
            print(f"  · {line}")
        print(f"{env.name} is set up on {env.host}")
        return 0
    if args.command in ("deploy", "plan", "rollback"):
        return _release_command(args, ws, env, progress)
    if args.command in ("status", "releases"):
        current = status.read_status(env, units=render_units(ws.root, env))
        if args.format == "json":
            data = current.to_dict() if args.command == "status" else current.releases
            print(json.dumps(data, indent=2))
        else:
            show.env_status(current, releases_only=args.command == "releases")
        return 0 if current.healthy or args.command == "releases" else 1
    if args.command == "restart":
        which = service.restart(
            ws.root, env, reporter, wait=args.wait, apply_units=args.apply_units
        )
        print(f"restarted {env.name}: {which} healthy in {time.monotonic() - started:.2f} s")
        return 0
    if args.command == "stop":
        service.stop(env, reporter)
        print(f"stopped {env.unit}.service")
        return 0
    if args.command == "unlock":
        print(service.unlock(env, args.force))
        return 0
    if args.command in ("backup", "backups", "restore"):
        return _backup_command(args, ws, env, reporter, started)
    return service.logs(env, args.lines, args.follow)


def _backup_command(
    args: argparse.Namespace,
    ws: releasing.Workspace,
    env: environments.Environment,
    reporter: show.PrintReporter,
    started: float,
) -> int:
    if args.command == "backup":
        print(f"backing up {env.name} on {env.host}")
        taken = backup.take(env, reporter, args.pull)
        done = taken.done
        where = taken.pulled_to or done["path"]
        print(
            f"backed up {env.name}: {done['id']} ({done['event_count']} events, "
            f"{done['bytes'] / 1e6:.1f} MB) at {where} in {time.monotonic() - started:.2f} s"
        )
        if done["removed"]:
            print(f"  · removed old backups: {', '.join(done['removed'])}")
        return 0
    if args.command == "backups":
        listed = backup.listing(env)
        if args.format == "json":
            print(json.dumps([asdict(b) for b in listed], indent=2))
        elif not listed:
            print(f"no backups of {env.name}")
        for item in listed if args.format == "table" else []:
            print(f"{item.id:<20} {item.event_count!s:>8} events  release {str(item.release)[:12]}")
        return 0
    source_name, backup_id = backup.parse_source(args.source, env)
    source = environments.load(ws.root, source_name)
    print(f"restoring {source.name}/{backup_id} into {env.name} on {env.host}")
    restored = backup.restore(env, source, backup_id, reporter)
    for kept in restored["kept"]:
        print(f"  · kept the replaced data at {kept}")
    print(
        f"restored {restored['event_count']} events from {source.name}/{backup_id} "
        f"into {env.name}, "
        f"healthy, in {time.monotonic() - started:.2f} s"
    )
    return 0


def _release_command(
    args: argparse.Namespace,
    ws: releasing.Workspace,
    env: environments.Environment,
    progress: Progressable,
) -> int:
    """deploy, plan and rollback: what puts a release live, or says what would."""
    reporter = show.PrintReporter()
    started = time.monotonic()
    if args.command == "deploy":
        result = deploy.deploy(
            ws,
            env,
            args.version,
            _store(args.store, ws),
            reporter=reporter,
            progress=progress,
            migrate=args.migrate,
            wait=args.wait,
            forced=(args.reason or "") if args.force else None,
            apply_units=args.apply_units,
        )
        verb = "already deployed" if result.outcome == "noop" else "deployed"
        took = time.monotonic() - started
        print(f"{verb} {result.version} ({result.sha[:12]}) to {env.name} in {took:.2f} s")
        return 0
    if args.command == "plan":
        ahead = deploy.preview(ws, env, args.version, _store(args.store, ws), progress=progress)
        if args.format == "json":
            print(json.dumps(ahead.to_dict(), indent=2))
        else:
            show.plan(ahead)
        return 0
    if args.command == "rollback":
        print(f"rolling back {env.name} on {env.host}")
        forced = (args.reason or "") if args.force else None
        result = rollback.rollback(
            ws.root,
            env,
            args.to,
            reporter,
            forced=forced,
            wait=args.wait,
            apply_units=args.apply_units,
        )
        took = time.monotonic() - started
        print(f"rolled back {env.name} to {result.version} ({result.sha[:12]}) in {took:.2f} s")
        return 0
    raise AssertionError(args.command)


def _promote(args: argparse.Namespace, ws: releasing.Workspace, progress: Progressable) -> int:
    source = environments.load(ws.root, args.source)
    target = environments.load(ws.root, args.target)
    started = time.monotonic()
    result = promote.promote(
        ws,
        source,
        target,
        _store(args.store, ws),
        reporter=show.PrintReporter(),
        progress=progress,
        wait=args.wait,
        forced=(args.reason or "") if args.force else None,
        migrate=args.migrate,
        apply_units=args.apply_units,
    )
    verb = "already deployed" if result.outcome == "noop" else "promoted"
    took = time.monotonic() - started
    print(f"{verb} {result.version} ({result.sha[:12]}) to {target.name} in {took:.2f} s")
    return 0


def _status_all(ws: releasing.Workspace, output: str) -> int:
    """Every env on one screen; non-zero unless all are healthy."""
    envs = [environments.load(ws.root, name) for name in environments.available(ws.root)]
    rows = status.read_all(ws.root, envs)
    if output == "json":
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        show.overview(rows)
    return 0 if all(row.status and row.status.healthy for row in rows) else 1

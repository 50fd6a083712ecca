"""One handler per subcommand: read the arguments, call the library, print the result."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from release import show
from release.artifacts import contract, releasing
from release.artifacts.artifact import contract_of, targets_of
from release.artifacts.store import Store
from release.artifacts.stores import open_store
from release.clock import Clock
from release.hosts import backup, environments, everywhere, service
from release.hosts import deploy as deploying
from release.hosts import promote as promoting
from release.hosts import rollback as rolling_back
from release.hosts import status as reading
from release.hosts.context import Context, Options, RemoteFactory
from release.hosts.environments import Environment
from release.hosts.operation import one_host
from release.hosts.units import render_units
from release.progress import Progressable


@dataclass(frozen=True)
class Run:
    """What every handler of one invocation shares."""

    ws: releasing.Workspace
    progress: Progressable
    remote_factory: RemoteFactory
    clock: Clock
    #: Envs by name (the project's env files; an unknown one is a UsageError).
    env: Callable[[str], Environment]

    def context(self, args: argparse.Namespace, env: Environment | None = None) -> Context:
        """The host commands' context for `--env` (or `env`), with the options given."""
        return Context(
            root=self.ws.root,
            env=env or self.env(args.env),
            reporter=show.PrintReporter(),
            remote_factory=self.remote_factory,
            progress=self.progress,
            clock=self.clock,
            options=Options(
                wait=getattr(args, "wait", 0.0),
                migrate=getattr(args, "migrate", False),
                forced=(args.reason or "") if getattr(args, "force", False) else None,
                apply_units=getattr(args, "apply_units", False),
            ),
            environments=self.env,
        )

    def store(self, spec: str) -> Store:
        """The store `--store` names; a relative `dir:` is under the repository."""
        if spec.startswith("dir:") and not Path(spec[4:]).is_absolute():
            spec = f"dir:{self.ws.root / spec[4:]}"
        return open_store(spec, notify=show.note, cache=self.ws.cache / "github-assets")


#: What the parser names for each subcommand.
Handler = Callable[[Run, argparse.Namespace], int]


def cut(run: Run, args: argparse.Namespace) -> int:
    """`release`: tag a version and build its artifact."""
    done = releasing.cut(run.ws, args.version, args.bump, datetime.now(UTC).date())
    print(f"released {done.tag} at {done.commit}")
    print(f"artifact: {done.artifact.directory}")
    print(f"next: git push origin {run.ws.git.branch()} {done.tag}")
    return 0


def artifact(run: Run, args: argparse.Namespace) -> int:
    """`artifact`: build a commit into the local store."""
    built = releasing.build_head(run.ws, args.ref)
    kind = "release" if built.manifest.is_release else "dev build"
    print(f"built {kind} {built.version} ({built.commit})")
    print(f"artifact: {built.directory}")
    return 0


def publish(run: Run, args: argparse.Namespace) -> int:
    """`publish`: put a built artifact into a store."""
    store = run.store(args.store)
    outcome = releasing.publish(run.ws, args.version, store, run.progress)
    print(f"{store.label}: {args.version}: {outcome.value}")
    return 0


def verify(run: Run, args: argparse.Namespace) -> int:
    """`verify`: download a release and check every file."""
    verified = releasing.verify_from(run.ws, args.version, run.store(args.store), run.progress)
    count = len(verified.manifest.files) + 1
    print(f"verified {verified.version} ({verified.commit}): {count} files match")
    print(f"  data contract: {contract.describe(contract_of(verified.manifest))}")
    print(f"  hosts: {targets_of(verified.manifest)}")
    return 0


def guard(run: Run, args: argparse.Namespace) -> int:
    """`guard`: a tag CI may publish."""
    commit = releasing.guard(run.ws, args.tag, args.branch)
    print(f"{args.tag} ({commit}) is on {args.branch} and has release notes")
    return 0


def reproduce(run: Run, args: argparse.Namespace) -> int:
    """`reproduce`: two clean builds, byte for byte."""
    same = releasing.reproduce(run.ws, args.ref)
    print(f"two builds of {same.commit} are identical ({same.version})")
    return 0


def list_store(run: Run, args: argparse.Namespace) -> int:
    """`list`: the releases a store holds."""
    return show.releases(run.store(args.store).releases(), args.format)


def setup_host(run: Run, args: argparse.Namespace) -> int:
    """`setup-host`: prepare the env on its host."""
    # setup validates the settings with the service's own config (pydantic): load it only here.
    from release.hosts import setup  # noqa: PLC0415

    ctx = run.context(args)
    env_file = args.env_file or run.ws.root / f".env.{ctx.env.name}"
    for line in setup.setup_host(ctx, env_file) or ["nothing to change"]:
        print(f"  · {line}")
    print(f"{ctx.env.name} is set up on {', '.join(ctx.env.hosts)}")
    return 0


def deploy(run: Run, args: argparse.Namespace) -> int:
    """`deploy`: put a release live."""
    started = time.monotonic()
    ctx = run.context(args)
    result = everywhere.deploy(ctx, args.version, run.store(args.store))
    verb = "already deployed" if result.outcome == "noop" else "deployed"
    took = time.monotonic() - started
    print(f"{verb} {result.version} ({result.sha[:12]}) to {ctx.env.name} in {took:.2f} s")
    return 0


def plan(run: Run, args: argparse.Namespace) -> int:
    """`plan`: what a deploy would do, read-only."""
    ctx = run.context(args)
    plans = deploying.previews(ctx, args.version, run.store(args.store))
    if args.format == "json":
        shown = [p.to_dict() for p in plans] if ctx.env.several else plans[0].to_dict()
        print(json.dumps(shown, indent=2))
        return 0
    for host, ahead in zip(ctx.env.hosts, plans, strict=True):
        if ctx.env.several:
            print(f"== {host}")
        show.plan(ahead)
    return 0


def rollback(run: Run, args: argparse.Namespace) -> int:
    """`rollback`: back to the previous good release, or `--to`."""
    started = time.monotonic()
    ctx = run.context(args)
    print(f"rolling back {ctx.env.name} on {', '.join(ctx.env.hosts)}")
    result = rolling_back.rollback(ctx, args.to)
    took = time.monotonic() - started
    print(f"rolled back {ctx.env.name} to {result.version} ({result.sha[:12]}) in {took:.2f} s")
    return 0


def promote(run: Run, args: argparse.Namespace) -> int:
    """`promote`: deploy to `--to` what `--from` serves."""
    source = run.env(args.source)
    started = time.monotonic()
    ctx = run.context(args)
    result = promoting.promote(ctx, source, run.store(args.store))
    verb = "already deployed" if result.outcome == "noop" else "promoted"
    took = time.monotonic() - started
    print(f"{verb} {result.version} ({result.sha[:12]}) to {ctx.env.name} in {took:.2f} s")
    return 0


def status(run: Run, args: argparse.Namespace) -> int:
    """`status`: one env, or every env without `--env`; non-zero unless healthy."""
    if not args.env:
        return _status_all(run, args)
    ctx = run.context(args)
    if ctx.env.several:
        return _status_hosts(ctx, args, releases_only=False)
    current = reading.read_status(ctx, units=render_units(ctx.root, ctx.env))
    if args.format == "json":
        print(json.dumps(current.to_dict(), indent=2))
    else:
        show.env_status(current, releases_only=False)
    return 0 if current.healthy else 1


def releases(run: Run, args: argparse.Namespace) -> int:
    """`releases`: the releases on the env's host (on each of its hosts)."""
    ctx = run.context(args)
    if ctx.env.several:
        return _status_hosts(ctx, args, releases_only=True)
    current = reading.read_status(ctx, units=render_units(ctx.root, ctx.env))
    if args.format == "json":
        print(json.dumps(current.releases, indent=2))
    else:
        show.env_status(current, releases_only=True)
    return 0


def _status_hosts(ctx: Context, args: argparse.Namespace, *, releases_only: bool) -> int:
    """An env of several hosts: one line per host, then the env's verdict (exit 1 unless
    healthy, for `status`)."""
    whole = reading.read_env(ctx, units=None if releases_only else render_units(ctx.root, ctx.env))
    if args.format == "json":
        print(json.dumps(whole.to_dict(), indent=2))
    else:
        show.hosts_status(whole, releases_only=releases_only)
    return 0 if releases_only or whole.healthy else 1


def _status_all(run: Run, args: argparse.Namespace) -> int:
    """Every env on one screen; non-zero unless all are healthy."""
    envs = [run.env(name) for name in environments.available(run.ws.root)]
    if not envs:
        return 0
    rows = reading.read_all(run.context(args, envs[0]), envs)
    if args.format == "json":
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        show.overview(rows)
    return 0 if all(row.status and row.status.healthy for row in rows) else 1


def restart(run: Run, args: argparse.Namespace) -> int:
    """`restart`: the current release, through the health gate."""
    started = time.monotonic()
    ctx = run.context(args)
    which = service.restart(ctx)
    print(f"restarted {ctx.env.name}: {which} healthy in {time.monotonic() - started:.2f} s")
    return 0


def stop(run: Run, args: argparse.Namespace) -> int:
    """`stop`: the env's service."""
    ctx = run.context(args)
    service.stop(ctx)
    where = f" on {', '.join(ctx.env.hosts)}" if ctx.env.several else ""
    print(f"stopped {ctx.env.unit}.service{where}")
    return 0


def unlock(run: Run, args: argparse.Namespace) -> int:
    """`unlock`: clear a lock whose holder is gone."""
    print(service.unlock(run.context(args), args.holder_gone))
    return 0


def logs(run: Run, args: argparse.Namespace) -> int:
    """`logs`: the service's journal."""
    return service.logs(run.context(args), args.lines, args.follow)


def backup_now(run: Run, args: argparse.Namespace) -> int:
    """`backup`: snapshot the env's data on its host."""
    started = time.monotonic()
    ctx = run.context(args)
    env = ctx.env
    print(f"backing up {env.name} on {', '.join(env.hosts)}")
    if env.several:
        for host, each_taken in backup.take_everywhere(ctx, args.pull):
            done = each_taken.done
            print(
                f"backed up {env.name} on {host}: {done['id']} ({done['event_count']} events) "
                f"at {each_taken.pulled_to or done['path']}"
            )
        print(f"took {time.monotonic() - started:.2f} s")
        return 0
    taken = backup.take(ctx, args.pull)
    done = taken.done
    where = taken.pulled_to or done["path"]
    print(
        f"backed up {env.name}: {done['id']} ({done['event_count']} events, "
        f"{done['bytes'] / 1e6:.1f} MB) at {where} in {time.monotonic() - started:.2f} s"
    )
    if done["removed"]:
        print(f"  · removed old backups: {', '.join(done['removed'])}")
    return 0


def backups(run: Run, args: argparse.Namespace) -> int:
    """`backups`: the env's backups on its host."""
    ctx = run.context(args)
    if ctx.env.several:
        per_host = backup.listing_everywhere(ctx)
        if args.format == "json":
            print(json.dumps({h: [asdict(b) for b in listed] for h, listed in per_host}, indent=2))
            return 0
        for host, listed in per_host:
            print(f"== {host}" + ("" if listed else f": no backups of {ctx.env.name}"))
            for item in listed:
                print(_backup_line(item))
        return 0
    listed = backup.listing(ctx)
    if args.format == "json":
        print(json.dumps([asdict(b) for b in listed], indent=2))
    elif not listed:
        print(f"no backups of {ctx.env.name}")
    for item in listed if args.format == "table" else []:
        print(_backup_line(item))
    return 0


def _backup_line(item: backup.Backup) -> str:
    return f"{item.id:<20} {item.event_count!s:>8} events  release {str(item.release)[:12]}"


def restore(run: Run, args: argparse.Namespace) -> int:
    """`restore`: a backup of this env (ID) or another on the same host (ENV/ID)."""
    started = time.monotonic()
    ctx = run.context(args)
    env = ctx.env
    # Each host holds its own data and its own backups: a restore picks one host's.
    one_host(env, "restore")
    source_name, backup_id = backup.parse_source(args.source, env)
    source = run.env(source_name)
    print(f"restoring {source.name}/{backup_id} into {env.name} on {env.host}")
    restored = backup.restore(ctx, source, backup_id)
    for kept in restored["kept"]:
        print(f"  · kept the replaced data at {kept}")
    print(
        f"restored {restored['event_count']} events from {source.name}/{backup_id} "
        f"into {env.name}, healthy, in {time.monotonic() - started:.2f} s"
    )
    return 0

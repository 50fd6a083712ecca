"""The command line: every subcommand, its arguments and the handler that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from release.artifacts.stores import DEFAULT_STORE
from release.cli import commands


def parser() -> argparse.ArgumentParser:
    """`python -m release`'s parser; each subcommand names its handler (`args.handler`)."""
    top = argparse.ArgumentParser(prog="python -m release", description="Helionyx releases")
    top.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    sub = top.add_subparsers(dest="command", required=True)

    cut = sub.add_parser("release", help="tag a new version and build its artifact")
    cut.add_argument("--version", help="X.Y.Z or vX.Y.Z")
    cut.add_argument("--bump", help="patch, minor or major")
    cut.set_defaults(handler=commands.cut)

    build = sub.add_parser("artifact", help="build the artifact for HEAD into the local store")
    build.add_argument("--ref", default="HEAD", help="commit to build (default HEAD)")
    build.set_defaults(handler=commands.artifact)

    for name, text, handler in (
        ("publish", "publish a built artifact to a store", commands.publish),
        ("verify", "download a release into the cache and check it", commands.verify),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--version", required=True, help="version, tag or SHA")
        command.add_argument("--store", default=DEFAULT_STORE, help="dir:PATH or github:OWNER/REPO")
        command.set_defaults(handler=handler)

    guard = sub.add_parser("guard", help="refuse a tag not on main or without CHANGELOG section")
    guard.add_argument("--tag", required=True)
    guard.add_argument("--branch", default="origin/main")
    guard.set_defaults(handler=commands.guard)
    reproduce = sub.add_parser("reproduce", help="build a commit in two clones; must be identical")
    reproduce.add_argument("--ref", default="HEAD")
    reproduce.set_defaults(handler=commands.reproduce)

    listing = sub.add_parser("list", help="list the releases a store holds")
    listing.add_argument("--store", default=DEFAULT_STORE)
    _format(listing)
    listing.set_defaults(handler=commands.list_store)
    _host_parsers(sub)
    return top


def _format(command: argparse.ArgumentParser) -> None:
    command.add_argument("--format", choices=("table", "json"), default="table")


def _host_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that act on an environment's host."""

    def host_command(
        name: str, text: str, handler: commands.Handler, *, env_required: bool = True
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        if env_required:
            command.add_argument("--env", required=True, help="dev, staging or live")
        command.set_defaults(handler=handler)
        return command

    setup = host_command(
        "setup-host", "prepare an environment on its host (idempotent)", commands.setup_host
    )
    setup.add_argument("--env-file", type=Path, help="settings to upload (default .env.<env>)")
    deploy = host_command("deploy", "deploy a release to an environment", commands.deploy)
    deploy.add_argument("--version", required=True, help="version, tag or SHA")
    deploy.add_argument("--store", default=DEFAULT_STORE)

    plan = host_command("plan", "what deploying a release would do (read-only)", commands.plan)
    plan.add_argument("--version", required=True, help="version, tag or SHA")
    plan.add_argument("--store", default=DEFAULT_STORE)
    _format(plan)
    text = "return to the previous good release, or to --to"
    back = host_command("rollback", text, commands.rollback)
    back.add_argument("--to", help="version, tag or SHA on the host")
    releases = host_command("releases", "list releases on the host", commands.releases)
    _format(releases)
    text = "show what runs (without --env: every environment)"
    every = host_command("status", text, commands.status, env_required=False)
    every.add_argument("--env", help="dev, staging or live (default: all)")
    _format(every)
    logs = host_command("logs", "show the service journal", commands.logs)
    logs.add_argument("--lines", type=int, default=100)
    logs.add_argument("--follow", action="store_true")
    restart = host_command("restart", "restart the service and check its health", commands.restart)
    text = "deploy to --to exactly the release --from serves now (verified again, never rebuilt)"
    promote = host_command("promote", text, commands.promote, env_required=False)
    promote.add_argument("--from", dest="source", required=True, help="e.g. staging")
    promote.add_argument("--to", dest="env", required=True, help="e.g. live")
    promote.add_argument("--store", default=DEFAULT_STORE)
    for command in (deploy, promote):
        command.add_argument(
            "--migrate",
            action="store_true",
            help="build a new read model when the release needs one",
        )
    for command, skips in (
        (deploy, "skip the staging gate"),
        (promote, "skip the staging gate"),
        (back, "even if it cannot read the log"),
    ):
        command.add_argument("--force", action="store_true", help=skips)
        command.add_argument("--reason", help="why --force (recorded in the deploy log)")
    for command in (deploy, back, restart, promote):
        command.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for a held lock (0: refuse)"
        )
        command.add_argument(
            "--apply-units", action="store_true", help="apply a changed host set-up (units)"
        )
    host_command("stop", "stop the service", commands.stop)
    unlock = host_command("unlock", "clear a lock whose holder is gone", commands.unlock)
    unlock.add_argument(
        "--force", dest="holder_gone", action="store_true", help="holder on another machine is gone"
    )
    text = "snapshot the environment's data on its host while it runs"
    backup = host_command("backup", text, commands.backup_now)
    backup.add_argument("--pull", type=Path, help="also copy the backup under this directory")
    text = "list the environment's backups on its host"
    backups = host_command("backups", text, commands.backups)
    _format(backups)
    text = "restore a backup (ID or ENV/ID) into the environment"
    restore = host_command("restore", text, commands.restore)
    restore.add_argument("--from", dest="source", required=True, help="ID or ENV/ID")

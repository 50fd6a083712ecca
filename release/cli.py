"""`python -m release`: the one place that prints results and maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from release import releasing
from release.errors import ReleaseError
from release.progress import NoProgress, Progressable, TransferProgress
from release.store import DEFAULT_STORE, ReleaseInfo, Store, open_store


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

    listing = sub.add_parser("list", help="list the releases a store holds")
    listing.add_argument("--store", default=DEFAULT_STORE)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    ws = releasing.Workspace(args.repo.resolve())
    progress: Progressable = TransferProgress() if sys.stderr.isatty() else NoProgress()
    try:
        return _dispatch(args, ws, progress)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _store(spec: str, ws: releasing.Workspace) -> Store:
    if spec.startswith("dir:") and not Path(spec[4:]).is_absolute():
        spec = f"dir:{ws.root / spec[4:]}"
    return open_store(spec)


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
        return 0
    return _list(_store(args.store, ws).releases(), args.format)


def _list(infos: list[ReleaseInfo], fmt: str) -> int:
    if fmt == "json":
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    if not infos:
        print("no releases")
        return 0
    print(f"{'VERSION':<36} {'SHA':<12} {'BUILT':<21} {'SIZE':>10}")
    for info in infos:
        print(f"{info.version:<36} {info.sha[:12]:<12} {info.built_at:<21} {_size(info.size):>10}")
    return 0


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"

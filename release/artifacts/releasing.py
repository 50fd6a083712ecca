"""The release operations the CLI offers: cut a release, build, publish, verify, list."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from packaging.version import Version

from release.agent.protocol import SUMS
from release.artifacts import artifact as artifacts
from release.artifacts.artifact import Artifact
from release.artifacts.changelog import cut_release, release_notes, require_data_notes
from release.artifacts.contract import changes, contract_at, read_contract
from release.artifacts.git import Git
from release.artifacts.store import DirStore, Outcome, Store, resolve
from release.artifacts.version import latest_release, next_version, parse_release_version, tag_for
from release.errors import ArtifactError, GitError
from release.progress import Progressable

CHANGELOG = "CHANGELOG.md"


@dataclass(frozen=True)
class Workspace:
    """The repository a command works on and where it keeps artifacts."""

    root: Path

    @property
    def git(self) -> Git:
        """The repository."""
        return Git(self.root)

    @property
    def local_store(self) -> DirStore:
        """Where builds land: dist/releases."""
        return DirStore(self.root / "dist" / "releases")

    @property
    def cache(self) -> Path:
        """Where verify downloads to."""
        return self.root / "dist" / "cache"


@dataclass(frozen=True)
class CutRelease:
    """What `make release` did."""

    version: Version
    tag: str
    commit: str
    artifact: Artifact


def cut(ws: Workspace, requested: str | None, part: str | None, today: date) -> CutRelease:
    """Check, move the changelog, commit, tag, then build the artifact for the tag."""
    git = ws.git
    if requested and git.tag_commit(tag_for(parse_release_version(requested))) is not None:
        raise GitError(f"tag v{requested.lstrip('v')} already exists", hint="pick a higher version")
    version = next_version(git, requested, part)
    tag = tag_for(version)
    if not git.is_clean():
        raise GitError(
            "the work tree has uncommitted changes", hint="commit or stash them, then release"
        )
    changelog = ws.root / CHANGELOG
    if not changelog.is_file():
        raise GitError(f"{CHANGELOG} is missing", hint="keep one in Keep a Changelog form")
    text = changelog.read_text(encoding="utf-8")
    previous = latest_release(git)
    before = contract_at(git, tag_for(previous)) if previous else None
    if before is not None:
        changed = changes(before, read_contract(ws.root))
        if changed:
            require_data_notes(text, "; ".join(changed))
    updated = cut_release(text, version, today)
    changelog.write_text(updated, encoding="utf-8")
    commit = git.commit_all(f"chore(release): {tag}", CHANGELOG)
    git.annotated_tag(tag, commit, f"Helionyx {version}")
    return CutRelease(version, tag, commit, artifacts.build(git, commit, ws.local_store.root))


def build_head(ws: Workspace, ref: str = "HEAD") -> Artifact:
    """Build the artifact for a commit (HEAD by default) into the local store."""
    return artifacts.build(ws.git, ws.git.rev(ref), ws.local_store.root)


def check_against_git(ws: Workspace, built: Artifact) -> Artifact:
    """Refuse an artifact whose tag, in this repository, names another commit."""
    tag = built.manifest.tag
    if tag is None:
        return built
    try:
        expected = ws.git.tag_commit(tag)
    except GitError:
        return built  # not inside a git repository: nothing to compare with
    if expected is not None:
        # The bytes were just verified; only the commit is left to compare.
        artifacts.require_commit(built.manifest, expected)
    return built


def local_artifact(ws: Workspace, version: str) -> Artifact:
    """A verified artifact from the local store, by version, tag or SHA prefix."""
    info = resolve(ws.local_store.releases(), version)
    built = artifacts.verify(ws.local_store.root / info.version)
    return check_against_git(ws, built)


def publish(ws: Workspace, version: str, store: Store, progress: Progressable) -> Outcome:
    """Publish a locally built, verified artifact to `store`."""
    built = local_artifact(ws, version)
    notes = ""
    if built.manifest.tag is not None:
        notes = release_notes(ws.root / CHANGELOG, Version(built.version))
    return store.publish(built, notes, progress)


def verify_from(ws: Workspace, version: str, store: Store, progress: Progressable) -> Artifact:
    """Download a release into the local cache and check every checksum and the manifest."""
    ws.cache.mkdir(parents=True, exist_ok=True)
    # Always the store's bytes, even when an earlier copy is cached: a store altered since must
    # be noticed, not papered over. Download beside the cache and move in only what verified.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=ws.cache) as tmp:
        fetched = check_against_git(ws, artifacts.verify(store.fetch(version, Path(tmp), progress)))
        final = ws.cache / fetched.version
        if final.exists():
            shutil.rmtree(final)
        fetched.directory.rename(final)
    return Artifact(final, fetched.manifest)


def guard(ws: Workspace, tag: str, branch: str) -> str:
    """Refuse to publish a tag that is not on `branch` or has no CHANGELOG section."""
    version = parse_release_version(tag)
    commit = ws.git.tag_commit(tag_for(version))
    if commit is None:
        raise GitError(f"there is no tag {tag_for(version)}", hint="push the tag first")
    if not ws.git.is_ancestor(commit, branch):
        raise GitError(
            f"{tag_for(version)} ({commit[:12]}) is not on {branch}",
            hint="release only commits that are on main",
        )
    release_notes(ws.root / CHANGELOG, version)
    return commit


def reproduce(ws: Workspace, ref: str) -> Artifact:
    """Build `ref` in two separate clones and insist on identical artifacts."""
    commit = ws.git.rev(ref)
    built: list[Artifact] = []
    with tempfile.TemporaryDirectory(prefix="helionyx-reproduce-") as tmp:
        for name in ("a", "b"):
            clone = Path(tmp) / name
            ws.git.run("clone", "--quiet", "--no-local", str(ws.root), str(clone))
            Git(clone).run("checkout", "--quiet", commit)
            # Each build its own wheel cache: the second fetches its wheels as the first did.
            store, cache = Path(tmp) / f"store-{name}", Path(tmp) / f"cache-{name}"
            built.append(artifacts.build(Git(clone), commit, store, wheel_cache=cache))
        first, second = built
        for path in [*artifacts.artifact_files(first.directory), SUMS]:
            if (first.directory / path).read_bytes() != (second.directory / path).read_bytes():
                raise ArtifactError(
                    f"{path} differs between two builds of {commit[:12]}",
                    hint="something in the build is not reproducible",
                )
    return first

"""Release stores behind one interface: a local directory or GitHub Releases.

A store holds complete, verified artifacts keyed by version. Publishing is immutable: the same
version again with identical bytes is a no-op, with different bytes it is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import Artifact, Manifest, artifact_files, targets_of, verify
from release.errors import AlreadyPublished, NotFound, UsageError
from release.progress import Progressable


@dataclass(frozen=True)
class ReleaseInfo:
    """One release a store holds."""

    version: str
    tag: str | None
    sha: str  # "" when unknown (a release made outside this tool, without a manifest)
    built_at: str
    size: int
    #: The hosts it serves, short (`3.11,3.12,3.13 x86_64,aarch64 glibc 2.31+`); "" if unknown.
    targets: str = ""

    @classmethod
    def of(cls, manifest: Manifest, size: int | None = None) -> ReleaseInfo:
        """Summarise a manifest (`size`: what the store holds, when it is not the manifest's)."""
        return cls(
            manifest.version,
            manifest.tag,
            manifest.commit,
            manifest.built_at,
            manifest.size if size is None else size,
            targets_of(manifest).short,
        )


class Outcome(Enum):
    """What publishing did."""

    CREATED = "published"
    UNCHANGED = "already published with identical bytes; nothing to do"
    COMPLETED = "completed an interrupted publish"
    ADDED = "added the artifact to a release that already existed (made outside this tool)"


class Store(Protocol):
    """Where artifacts are published and fetched from."""

    label: str

    def releases(self) -> list[ReleaseInfo]:
        """Every release held, newest first."""
        ...

    def find(self, ref: str) -> ReleaseInfo:
        """The release a version, tag or SHA prefix names (NotFound if none)."""
        ...

    def publish(self, artifact: Artifact, notes: str, progress: Progressable) -> Outcome:
        """Publish a verified artifact."""
        ...

    def fetch(self, version: str, destination: Path, progress: Progressable) -> Path:
        """Download `version` into `destination/<version>/` and return that directory."""
        ...


def newest_built_first(infos: list[ReleaseInfo]) -> list[ReleaseInfo]:
    """Order releases by build time, newest first (version breaks ties)."""
    return sorted(infos, key=lambda r: (r.built_at, r.version), reverse=True)


def resolve(infos: list[ReleaseInfo], ref: str) -> ReleaseInfo:
    """Find a release by version (with or without `v`), tag, or a commit SHA prefix."""
    if not ref.strip():
        raise UsageError(
            "no version given",
            hint="pass VERSION= a version, tag or SHA (make releases-available lists them)",
        )
    bare = ref[1:] if ref.startswith("v") and ref[1:2].isdigit() else ref
    for info in infos:
        if ref in (info.version, info.tag) or bare == info.version:
            return info
    if len(ref) >= 7 and all(c in "0123456789abcdef" for c in ref):
        matches = [i for i in infos if i.sha.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
    known = ", ".join(i.version for i in newest_built_first(infos)[:5]) or "none"
    raise NotFound(
        f"unknown version {ref!r}",
        hint=f"the store holds: {known} (make releases-available lists them)",
    )


class DirStore:
    """Artifacts as `<root>/<version>/` directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = f"dir:{root}"

    def releases(self) -> list[ReleaseInfo]:
        """Every complete artifact directory, newest first."""
        infos = []
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.name.startswith(".") or not (child / SUMS).is_file():
                    continue
                infos.append(
                    ReleaseInfo.of(Manifest.from_json((child / MANIFEST).read_text("utf-8")))
                )
        return newest_built_first(infos)

    def find(self, ref: str) -> ReleaseInfo:
        """The release `ref` names."""
        return resolve(self.releases(), ref)

    def publish(self, artifact: Artifact, notes: str, progress: Progressable) -> Outcome:
        """Copy the artifact in (atomically), or confirm an identical copy is there."""
        final = self.root / artifact.version
        if final.resolve() == artifact.directory.resolve():
            return Outcome.UNCHANGED
        if final.exists():
            if (final / SUMS).read_bytes() == (artifact.directory / SUMS).read_bytes():
                verify(final)
                return Outcome.UNCHANGED
            raise AlreadyPublished(
                f"{self.label} already holds {artifact.version} with different bytes",
                hint="releases are immutable; publish a new version",
                release=artifact.version,
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{artifact.version}.", dir=self.root))
        staging.chmod(0o755)  # mkdtemp makes 0700; artifacts are world-readable
        try:
            _copy_tree(artifact.directory, staging, progress)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Outcome.CREATED

    def fetch(self, version: str, destination: Path, progress: Progressable) -> Path:
        """Copy one artifact into `destination/<version>`."""
        info = self.find(version)
        source = self.root / info.version
        target = destination / info.version
        if target.resolve() == source.resolve():
            return target
        replace_dir(target, lambda staging: _copy_tree(source, staging, progress))
        return target


def _copy_tree(source: Path, target: Path, progress: Progressable) -> None:
    files = [*artifact_files(source), SUMS]
    progress.start(f"copying {source.name}", sum((source / f).stat().st_size for f in files))
    try:
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target / name)
            progress.advance((source / name).stat().st_size)
    finally:
        progress.finish()


def replace_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh sibling directory, then swap it in place of `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes 0700; artifacts are world-readable
    try:
        fill(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

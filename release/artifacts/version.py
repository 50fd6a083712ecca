"""Semantic versions, release tags and dev versions for untagged commits."""

from __future__ import annotations

import re
from typing import Literal

from packaging.version import InvalidVersion, Version

from release.artifacts.git import Git
from release.errors import UsageError

Bump = Literal["major", "minor", "patch"]
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def parse_release_version(text: str) -> Version:
    """Parse `0.3.1` or `v0.3.1` as a release version (MAJOR.MINOR.PATCH), or raise."""
    raw = text.strip()
    bare = raw[1:] if raw.startswith("v") else raw
    if not _SEMVER.match(bare):
        raise UsageError(
            f"{text!r} is not a release version",
            hint="use MAJOR.MINOR.PATCH, e.g. 0.3.1 or v0.3.1",
        )
    return Version(bare)


def tag_for(version: Version) -> str:
    """The git tag of a release version."""
    return f"v{version}"


def release_tags(git: Git) -> dict[Version, str]:
    """Every tag that names a release version, by version."""
    found: dict[Version, str] = {}
    for tag in git.tags():
        if tag.startswith("v") and _SEMVER.match(tag[1:]):
            found[Version(tag[1:])] = tag
    return found


def latest_release(git: Git) -> Version | None:
    """The highest released version, if any."""
    return max(release_tags(git), default=None)


def bump(version: Version | None, part: Bump) -> Version:
    """The next version after `version` (0.0.0 when there is none)."""
    major, minor, patch = version.release[:3] if version else (0, 0, 0)
    if part == "major":
        return Version(f"{major + 1}.0.0")
    if part == "minor":
        return Version(f"{major}.{minor + 1}.0")
    return Version(f"{major}.{minor}.{patch + 1}")


def next_version(git: Git, requested: str | None, part: str | None) -> Version:
    """Resolve VERSION= or BUMP= into a new version greater than the latest tag."""
    latest = latest_release(git)
    if requested and part:
        raise UsageError("give VERSION or BUMP, not both")
    if part:
        if part not in ("major", "minor", "patch"):
            raise UsageError(f"unknown BUMP {part!r}", hint="use BUMP=patch, minor or major")
        return bump(latest, part)  # type: ignore[arg-type]
    if not requested:
        raise UsageError("no version given", hint="use VERSION=X.Y.Z or BUMP=patch|minor|major")
    version = parse_release_version(requested)
    if latest is not None and version <= latest:
        raise UsageError(
            f"version {version} is not greater than the latest release {latest}",
            hint=f"use a version above {latest}, e.g. BUMP=patch → {bump(latest, 'patch')}",
        )
    return version


def version_of_commit(git: Git, commit: str) -> tuple[Version, str | None]:
    """The release version and tag at `commit`, or a PEP 440 dev version carrying its SHA."""
    tagged = [t for t in git.tags_at(commit) if t.startswith("v") and _SEMVER.match(t[1:])]
    if tagged:
        tag = max(tagged, key=lambda t: Version(t[1:]))
        return Version(tag[1:]), tag
    latest = latest_release(git)
    distance = git.count_since(release_tags(git)[latest], commit) if latest else 0
    base = bump(latest, "patch")
    try:
        return Version(f"{base}.dev{distance}+g{commit[:12]}"), None
    except InvalidVersion as exc:  # pragma: no cover - the pieces are all digits and hex
        raise UsageError(str(exc)) from None


def is_dev(version: Version) -> bool:
    """Whether a version is a dev build rather than a tagged release."""
    return version.is_devrelease or version.local is not None

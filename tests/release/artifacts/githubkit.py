"""Releases as this tool publishes them, made by hand for the GitHub store's tests and bench."""

from __future__ import annotations

import hashlib
from pathlib import Path

from release.agent import checksums
from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import MANIFEST_SCHEMA, Artifact, FileEntry, Manifest
from release.artifacts.github import GitHubStore
from tests.release.artifacts.github_standin import GitHubStandIn
from tests.release.fakes import FakeClock, Notes

COMMIT = "4" * 40
TOKEN = "ghs_0123456789secretTOKEN"


def github_store(
    github: GitHubStandIn,
    *,
    token: str | None = TOKEN,
    cache: Path | None = None,
    notes: Notes | None = None,
    clock: FakeClock | None = None,
) -> GitHubStore:
    """The store against the stand-in: fast retries, a fake clock, notes collected."""
    return GitHubStore(
        "helionyx",
        "helionyx",
        token,
        api_url=github.api_url,
        backoff=0.01,
        clock=clock or FakeClock(),
        notify=notes or Notes(),
        cache=cache,
    )


def tiny_artifact(root: Path, version: str = "0.1.0", commit: str = COMMIT) -> Artifact:
    """A complete artifact of three small files, as the store sees one (it never builds)."""
    directory = root / version
    files = {
        f"helionyx-{version}-py3-none-any.whl": f"wheel {version}".encode(),
        "requirements.lock": b"dep==1.0\n",
        "wheelhouse/dep-1.0-py3-none-any.whl": b"dependency",
    }
    for path, data in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(data)
    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA,
        name="helionyx",
        version=version,
        tag=f"v{version}",
        commit=commit,
        built_at="2026-12-01T10:00:00Z",
        python_requires=">=3.11",
        platform="manylinux_2_17_x86_64",
        files=tuple(
            FileEntry(path, len(data), hashlib.sha256(data).hexdigest())
            for path, data in files.items()
        ),
    )
    (directory / MANIFEST).write_text(manifest.to_json())
    checksums.write(directory, [*files, MANIFEST])
    return Artifact(directory, manifest)


def seed_ours(github: GitHubStandIn, tmp_path: Path, version: str, commit: str = COMMIT) -> None:
    """A release as this tool publishes it: every file an asset, SHA256SUMS last."""
    built = tiny_artifact(tmp_path / "seed", version, commit)
    assets = {
        path.rsplit("/", 1)[-1]: (built.directory / path).read_bytes()
        for path in [*(f.path for f in built.manifest.files), MANIFEST, SUMS]
    }
    github.seed_release(f"v{version}", commit, assets=assets)


def lookups(github: GitHubStandIn) -> int:
    """API requests other than the downloads of a release's own files."""
    return sum(
        1
        for method, path, _ in github.requests
        if not path.startswith("/assets/") and not (method == "GET" and "/releases/assets/" in path)
    )


def commit_of(number: int) -> str:
    """A distinct 40-hex commit for the `number`th seeded release (no two share a prefix)."""
    return hashlib.sha256(str(number).encode()).hexdigest()[:40]

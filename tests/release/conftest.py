"""Session fixtures that build real things once: a throwaway git repo and its first release."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from release.artifacts.git import snapshot_work_tree

REPO = Path(__file__).resolve().parents[2]
FIRST_VERSION = "0.1.0"


@dataclass(frozen=True)
class Result:
    """A finished command."""

    code: int
    stdout: str
    stderr: str


def release_cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `python -m release --repo REPO ARGS…` as an operator would."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "release", "--repo", str(repo), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def make_project_repo(target: Path) -> Path:
    """A new git repository holding this project's current files, one commit, no tags.

    Its live takes releases directly (no staging gate) and no env watches a release after its
    health gate: most tests deploy to any env alike; the gate's and the watch's own tests put
    them back."""
    snapshot_work_tree(REPO, target, "initial")
    for env in ("staging", "live"):
        toml = target / "deployment" / "environments" / f"{env}.toml"
        kept = [
            line
            for line in toml.read_text().splitlines()
            if not line.startswith(("requires =", "soak =", "watch ="))
        ]
        toml.write_text("\n".join(kept) + "\n")
    git(target, "commit", "--quiet", "--amend", "-am", "initial")
    return target


@dataclass(frozen=True)
class Released:
    """A throwaway repository with one release cut and built."""

    repo: Path
    version: str
    tag: str
    commit: str

    @property
    def artifact(self) -> Path:
        """The artifact directory in the repository's local store."""
        return self.repo / "dist" / "releases" / self.version


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """`make release VERSION=0.1.0` on a copy of this project, built once per session."""
    repo = make_project_repo(tmp_path_factory.mktemp("project"))
    result = release_cli(repo, "release", "--version", FIRST_VERSION)
    assert result.code == 0, result.stderr
    yield Released(repo, FIRST_VERSION, f"v{FIRST_VERSION}", git(repo, "rev-parse", "HEAD"))


def tree_listing(*roots: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under the roots, to prove nothing changed."""
    found: dict[str, tuple[int, int]] = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and ".git/" not in str(path):
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A copy of this project with v0.1.0, v0.2.0 and a broken v0.2.1 built, once per session."""
    from tests.release.deploykit import build_project  # noqa: PLC0415 - avoids an import cycle

    yield build_project(tmp_path_factory.mktemp("deployable"))


@pytest.fixture
def host(tmp_path: Path) -> Any:
    """A new pretend host: the real agent in-process on a temporary `/` (inprocess.py)."""
    from tests.release.inprocess import pretend_host  # noqa: PLC0415 - only the tests that use it

    return pretend_host(tmp_path)


@pytest.fixture
def node() -> Iterator[Any]:
    """A freshly booted test node (clean overlay) for one test; shut down afterwards."""
    from tests.release.deploykit import boot_fresh, harness  # noqa: PLC0415

    booted = boot_fresh()
    yield booted
    harness("down")

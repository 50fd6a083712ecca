from pathlib import Path

import pytest
from packaging.version import Version

from release.artifacts.git import Git
from release.artifacts.version import (
    bump,
    is_dev,
    next_version,
    parse_release_version,
    version_of_commit,
)
from release.errors import UsageError
from tests.release.conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> Git:
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "T")
    (tmp_path / "f").write_text("1")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-qm", "one")
    return Git(tmp_path)


@pytest.mark.parametrize(
    ("text", "version"), [("0.3.1", "0.3.1"), ("v0.3.1", "0.3.1"), (" 1.0.0 ", "1.0.0")]
)
def test_release_versions_accept_an_optional_v(text: str, version: str) -> None:
    assert parse_release_version(text) == Version(version)


@pytest.mark.parametrize("text", ["0.3", "1.0.0rc1", "01.2.3", "latest", "v", "1.2.3.4"])
def test_malformed_versions_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="not a release version"):
        parse_release_version(text)


def test_bumps_follow_semver() -> None:
    assert bump(Version("1.2.3"), "patch") == Version("1.2.4")
    assert bump(Version("1.2.3"), "minor") == Version("1.3.0")
    assert bump(Version("1.2.3"), "major") == Version("2.0.0")
    assert bump(None, "minor") == Version("0.1.0")


def test_the_next_version_must_be_greater_than_the_latest_tag(repo: Git) -> None:
    repo.annotated_tag("v0.2.0", repo.head(), "x")
    assert next_version(repo, "0.2.1", None) == Version("0.2.1")
    assert next_version(repo, None, "minor") == Version("0.3.0")
    with pytest.raises(UsageError, match="not greater than the latest release 0.2.0"):
        next_version(repo, "0.2.0", None)
    with pytest.raises(UsageError, match="unknown BUMP"):
        next_version(repo, None, "huge")


def test_untagged_commits_get_a_dev_version_carrying_their_sha(repo: Git) -> None:
    repo.annotated_tag("v0.2.0", repo.head(), "x")
    assert version_of_commit(repo, repo.head()) == (Version("0.2.0"), "v0.2.0")
    (repo.root / "f").write_text("2")
    commit = repo.commit_all("two", "f")
    version, tag = version_of_commit(repo, commit)
    assert tag is None
    assert str(version) == f"0.2.1.dev1+g{commit[:12]}"
    assert is_dev(version) and version < Version("0.2.1")

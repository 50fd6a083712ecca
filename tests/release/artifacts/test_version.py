from pathlib import Path

import pytest
from packaging.version import Version

from release.artifacts.git import Git
from release.artifacts.version import (
    bump,
    is_dev,
    latest_release,
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


def refusal(call: object) -> tuple[str, str | None]:
    """(message, hint) of the UsageError a call raises."""
    with pytest.raises(UsageError) as refused:
        call()  # type: ignore[operator]
    return refused.value.message, refused.value.hint


def test_each_refusal_says_what_and_how_to_fix_it(repo: Git) -> None:
    assert refusal(lambda: next_version(repo, "0.1.0", "patch")) == (
        "give VERSION or BUMP, not both",
        None,
    )
    assert refusal(lambda: next_version(repo, None, "PATCH")) == (
        "unknown BUMP 'PATCH'",
        "use BUMP=patch, minor or major",
    )
    assert refusal(lambda: next_version(repo, None, None)) == (
        "no version given",
        "use VERSION=X.Y.Z or BUMP=patch|minor|major",
    )
    assert refusal(lambda: parse_release_version("1.2")) == (
        "'1.2' is not a release version",
        "use MAJOR.MINOR.PATCH, e.g. 0.3.1 or v0.3.1",
    )
    repo.annotated_tag("v1.4.2", repo.head(), "x")
    assert refusal(lambda: next_version(repo, "1.4.2", None)) == (
        "version 1.4.2 is not greater than the latest release 1.4.2",
        "use a version above 1.4.2, e.g. BUMP=patch → 1.4.3",
    )


@pytest.mark.parametrize("part", ["major", "minor", "patch"])
def test_every_named_bump_is_taken(repo: Git, part: str) -> None:
    repo.annotated_tag("v1.4.2", repo.head(), "x")
    expected = {"major": "2.0.0", "minor": "1.5.0", "patch": "1.4.3"}[part]
    assert next_version(repo, None, part) == Version(expected)


def test_a_first_release_bumps_from_nothing(repo: Git) -> None:
    assert next_version(repo, None, "patch") == Version("0.0.1")


@pytest.mark.parametrize(
    ("text", "dev"),
    [("1.2.3", False), ("1.2.4.dev3", True), ("1.2.3+g0123abcd", True), ("1.2.4.dev3+gabc", True)],
)
def test_a_dev_build_is_told_from_a_release(text: str, dev: bool) -> None:
    assert is_dev(Version(text)) is dev


def test_only_v_and_three_numbers_name_a_release(repo: Git) -> None:
    for odd in ("vnext", "x1.0.0", "2.0.0", "v1.0"):
        repo.annotated_tag(odd, repo.head(), "not a release")
    version, tag = version_of_commit(repo, repo.head())
    assert (str(version), tag) == (f"0.0.1.dev0+g{repo.head()[:12]}", None)
    repo.annotated_tag("v0.3.0", repo.head(), "a release")
    assert latest_release(repo) == Version("0.3.0")
    assert version_of_commit(repo, repo.head()) == (Version("0.3.0"), "v0.3.0")


def test_a_commit_tagged_twice_is_the_higher_version(repo: Git) -> None:
    repo.annotated_tag("v0.9.0", repo.head(), "x")
    repo.annotated_tag("v0.10.0", repo.head(), "x")
    assert version_of_commit(repo, repo.head()) == (Version("0.10.0"), "v0.10.0")

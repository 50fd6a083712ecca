"""GitHub's documented behaviour against the store: redirects, rate limits, odd answers, lists.

These run against the stand-in's documented answers (tests/release/github_standin.py) with a
fake clock, so a one-minute rate-limit wait takes no time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from release.artifacts.artifact import MANIFEST_SCHEMA, Manifest
from release.artifacts.github import GitHubStore
from release.artifacts.store import resolve
from release.cli import main
from release.errors import AuthError, StoreError
from tests.release.artifacts.github_standin import (
    PRIMARY_LIMIT,
    SECONDARY_LIMIT,
    Fault,
    GitHubStandIn,
    primary_rate_limit,
    secondary_rate_limit,
    serving,
)
from tests.release.artifacts.githubkit import github_store
from tests.release.fakes import FakeClock, Notes

TOKEN = "ghs_0123456789secretTOKEN"
COMMIT = "3" * 40


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with serving(token=TOKEN) as standin:
        yield standin


def store(
    github: GitHubStandIn, clock: FakeClock | None = None, notes: Notes | None = None
) -> GitHubStore:
    return github_store(github, clock=clock, notes=notes)


def manifest_bytes(version: str, tag: str | None, commit: str = COMMIT) -> bytes:
    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA,
        name="helionyx",
        version=version,
        tag=tag,
        commit=commit,
        built_at="2026-11-30T10:00:00Z",
        python_requires=">=3.11",
        platform="manylinux_2_17_x86_64",
        files=(),
    )
    return manifest.to_json().encode()


# -- 1. a renamed repository answers 301 -----------------------------------------------------
def test_a_renamed_repository_is_followed_and_the_operator_told_once(
    github: GitHubStandIn,
) -> None:
    github.seed_release("v0.9.0", assets={"manifest.json": manifest_bytes("0.9.0", "v0.9.0")})
    github.rename("helionyx-service")
    notes = Notes()
    target = store(github, notes=notes)
    assert [r.version for r in target.releases()] == ["0.9.0"]
    assert [r.sha for r in target.releases()] == [COMMIT]
    assert len(notes.lines) == 1
    assert "has moved" in notes.lines[0] and "Update STORE" in notes.lines[0]
    old = [p for _, p, _ in github.requests if p.startswith("/repos/helionyx/helionyx/")]
    assert len(old) == 1, "after the 301 every request goes to the new address"


def test_a_redirect_without_location_or_in_a_loop_is_one_clear_error(
    github: GitHubStandIn,
) -> None:
    github.faults.append(Fault("/releases", 301, {}, {"message": "Moved Permanently"}))
    with pytest.raises(StoreError, match="301 for /repos/helionyx/helionyx/releases without a"):
        store(github).releases()
    loop = f"{github.api_url}/repos/helionyx/helionyx/releases"
    github.faults += [Fault("/releases", 302, {"Location": loop}) for _ in range(6)]
    with pytest.raises(StoreError, match="redirected .* more than 5 times"):
        store(github).releases()


# -- 2. target_commitish is a branch, not a commit ------------------------------------------
def test_the_commit_comes_from_the_manifest_and_a_branch_is_never_shown_as_one(
    github: GitHubStandIn,
) -> None:
    github.seed_release(
        "v0.8.0", "main", assets={"manifest.json": manifest_bytes("0.8.0", "v0.8.0")}
    )
    github.seed_release("v0.9.0", "develop")  # made in the web UI, nothing of ours attached
    listed = {r.version: r for r in store(github).releases()}
    assert listed["0.8.0"].sha == COMMIT
    assert listed["0.9.0"].sha == "", "no manifest: the commit is unknown, not 'develop'"
    assert resolve(list(listed.values()), COMMIT[:10]).version == "0.8.0"


def test_list_through_the_cli_shows_no_branch_in_the_sha_column(
    github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    github.seed_release("v0.9.0", "main")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    assert main(["list", "--store", "github:helionyx/helionyx"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:2] == ["0.9.0", "-"]
    assert main(["list", "--store", "github:helionyx/helionyx", "--format", "json"]) == 0
    assert '"sha": null' in capsys.readouterr().out


# -- drafts, prereleases, tags with and without v -----------------------------------------
def test_drafts_are_not_listed_prereleases_are_and_tags_resolve_with_or_without_v(
    github: GitHubStandIn,
) -> None:
    github.seed_release("0.9.3", assets={"manifest.json": manifest_bytes("0.9.3", "0.9.3")})
    github.seed_release("v1.0.0-rc.1", prerelease=True)
    github.seed_release("v1.0.0", draft=True)
    infos = store(github).releases()
    assert {r.tag for r in infos} == {"0.9.3", "v1.0.0-rc.1"}
    assert resolve(infos, "0.9.3").tag == "0.9.3"
    assert resolve(infos, "v0.9.3").tag == "0.9.3"


# -- 4. rate limits as GitHub documents them ------------------------------------------------
def test_a_primary_limit_without_reset_waits_a_minute_and_says_so(github: GitHubStandIn) -> None:
    github.faults.append(primary_rate_limit(reset_in=None))
    clock, notes = FakeClock(), Notes()
    assert store(github, clock, notes).releases() == []
    assert clock.slept == [60.0]
    assert len(notes.lines) == 1
    assert "rate limit" in notes.lines[0] and PRIMARY_LIMIT in notes.lines[0]
    assert "waiting 60 s, until " in notes.lines[0] and notes.lines[0].endswith("UTC")


def test_a_primary_limit_that_resets_much_later_fails_at_once_saying_when(
    github: GitHubStandIn,
) -> None:
    github.faults.append(primary_rate_limit(reset_in=3600))
    clock = FakeClock()
    with pytest.raises(StoreError) as raised:
        store(github, clock).releases()
    assert clock.slept == [], "an hour is not waited for"
    text = str(raised.value)
    assert PRIMARY_LIMIT in text and "until" in text and "contents: write" not in text


def test_a_secondary_limit_without_retry_after_backs_off_from_a_minute_then_gives_up(
    github: GitHubStandIn,
) -> None:
    github.faults += [secondary_rate_limit(retry_after=None) for _ in range(5)]
    clock, notes = FakeClock(), Notes()
    with pytest.raises(StoreError) as raised:
        store(github, clock, notes).releases()
    assert clock.slept == [60.0, 120.0], "at least a minute, growing, within the wait budget"
    assert len(notes.lines) == 2 and all("secondary rate limit" in n for n in notes.lines)
    assert SECONDARY_LIMIT in str(raised.value), "GitHub's own message is kept"


def test_retry_after_is_honoured_each_time_and_the_last_message_kept(
    github: GitHubStandIn,
) -> None:
    github.faults += [secondary_rate_limit(retry_after=60, status=429) for _ in range(5)]
    clock, notes = FakeClock(), Notes()
    with pytest.raises(StoreError, match="secondary rate limit") as raised:
        store(github, clock, notes).releases()
    assert clock.slept == [60.0, 60.0, 60.0]
    assert [n.split(": waiting ")[1][:4] for n in notes.lines] == ["60 s"] * 3
    assert "wait 60 s more" in str(raised.value)


def test_a_permission_403_is_not_mistaken_for_a_rate_limit(github: GitHubStandIn) -> None:
    github.faults.append(
        Fault("/releases", 403, {}, {"message": "Resource not accessible by integration"})
    )
    clock = FakeClock()
    with pytest.raises(AuthError, match="contents: read"):
        store(github, clock).releases()
    assert clock.slept == []


def test_a_short_server_error_is_retried_quietly(github: GitHubStandIn) -> None:
    github.faults.append(Fault("/releases", 502))
    clock, notes = FakeClock(), Notes()
    assert store(github, clock, notes).releases() == []
    assert len(clock.slept) == 1 and notes.lines == []


@pytest.mark.parametrize(
    "body", [{"message": "not a list"}, {"releases": []}], ids=["object", "other-object"]
)
def test_an_answer_that_is_not_the_documented_json_is_one_error(
    github: GitHubStandIn, body: dict[str, object]
) -> None:
    github.faults.append(Fault("/releases", 200, {}, body))
    with pytest.raises(StoreError, match="not the documented JSON"):
        store(github).releases()


def test_an_upload_to_a_renamed_repository_follows_the_301_with_its_body(
    github: GitHubStandIn,
) -> None:
    release = github.seed_release("v0.9.0")
    upload_url = release["upload_url"].split("{")[0]  # as a client read it before the rename
    github.rename("helionyx-service")
    target = store(github)
    target.http.request(
        "POST",
        upload_url,
        params={"name": "notes.txt"},
        content=b"twelve bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert github.asset_names("v0.9.0") == ["notes.txt"]
    moved = [(m, p) for m, p, _ in github.requests if p.startswith("/repositories/")]
    assert moved == [("POST", f"/repositories/700123/releases/{release['id']}/assets")]
    assert github.blobs[max(github.blobs)] == b"twelve bytes"

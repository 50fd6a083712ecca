"""The GitHub store at the edges: releases made by others, GitHub's own words, a few requests.

Each test stands for a finding of issue #24 and runs against the stand-in's documented answers
(tests/release/artifacts/github_standin.py) with a small hand-made artifact: no build, no root.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from release.agent import checksums
from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import Artifact, Manifest
from release.artifacts.store import Outcome
from release.cli import main
from release.errors import (
    AuthError,
    ForeignRelease,
    NotFound,
    StoreError,
    UsageError,
)
from release.progress import NoProgress
from tests.release.artifacts.github_standin import (
    Fault,
    GitHubStandIn,
    insufficient_permission,
    saml_enforced,
    secondary_rate_limit,
    serving,
)
from tests.release.artifacts.githubkit import (
    commit_of,
    github_store,
    lookups,
    seed_ours,
    tiny_artifact,
)
from tests.release.fakes import Notes

TOKEN = "ghs_0123456789secretTOKEN"
COMMIT = "4" * 40
SPEC = "github:helionyx/helionyx"


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with serving(token=TOKEN) as standin:
        yield standin


store = github_store


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. a release made by someone else never breaks a command --------------------------------
NOT_OURS = {
    "a-string": b'"a string"',
    "null": b"null",
    "a-list": b"[1, 2]",
    "not-utf8": b"\xff\xfe{}",
    "no-files": b'{"name": "someone-else"}',
}


@pytest.mark.parametrize("payload", NOT_OURS.values(), ids=NOT_OURS.keys())
def test_a_release_with_a_manifest_not_ours_is_skipped_by_list_and_named_by_verify(
    github: GitHubStandIn, tmp_path: Path, payload: bytes
) -> None:
    seed_ours(github, tmp_path, "0.9.0")
    github.seed_release("v0.5.0", "main", assets={MANIFEST: payload})
    notes = Notes()
    target = store(github, notes=notes)
    assert [r.version for r in target.releases()] == ["0.9.0"]
    assert len(notes.lines) == 1 and "skipped 1 release(s)" in notes.lines[0]
    assert "v0.5.0" in notes.lines[0]
    fetched = target.fetch("0.9.0", tmp_path / "out", NoProgress())
    assert (fetched / SUMS).is_file(), "every other version still verifies"
    with pytest.raises(ForeignRelease) as raised:
        target.fetch("0.5.0", tmp_path / "out", NoProgress())
    assert str(raised.value).startswith(
        "release v0.5.0 in github:helionyx/helionyx was not made by this tool: manifest.json "
    )


def test_verify_and_publish_of_a_release_not_ours_are_one_line_through_the_cli(
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github.seed_release("v0.5.0", "main", assets={MANIFEST: b"null"})
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    argv = ["--repo", str(tmp_path), "verify", "--version", "0.5.0", "--store", SPEC]
    code, _, err = run_cli(argv, capsys)
    assert code == 1
    assert err.splitlines() == [
        "error: release v0.5.0 in github:helionyx/helionyx was not made by this tool: "
        "manifest.json holds JSON null, not an object; pick another version (make "
        "releases-available lists them) or remove that release's manifest.json asset"
    ]
    with pytest.raises(ForeignRelease, match="v0.5.0 in github:helionyx/helionyx"):
        store(github).publish(tiny_artifact(tmp_path, "0.5.0"), "", NoProgress())
    assert github.asset_names("v0.5.0") == [MANIFEST], "nothing was added to their release"


# -- 2. publishing into a release made in the web UI says so -----------------------------------
def test_publishing_into_a_release_made_in_the_web_ui_says_it_was_added(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    github.seed_release("v0.1.0", "main", assets={"RELEASE-NOTES.txt": b"hand-written\n"})
    built = tiny_artifact(tmp_path)
    outcome = store(github).publish(built, "", NoProgress())
    assert outcome is Outcome.ADDED
    assert "added the artifact to a release that already existed" in outcome.value
    assert github.asset_names("v0.1.0")[0] == "RELEASE-NOTES.txt"
    assert github.asset_names("v0.1.0")[-1] == SUMS


def test_an_interrupted_publish_of_ours_is_still_called_completed(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    built = tiny_artifact(tmp_path)
    github.faults += [Fault("/assets", 502, method="POST") for _ in range(5)]
    with pytest.raises(StoreError, match="502"):
        store(github).publish(built, "", NoProgress())
    assert store(github).publish(built, "", NoProgress()) is Outcome.COMPLETED


# -- 3. GitHub's own words reach the operator ------------------------------------------------
def test_a_422_keeps_githubs_message_and_field(github: GitHubStandIn, tmp_path: Path) -> None:
    built = tiny_artifact(tmp_path, "0.1.0")
    bad = Artifact(
        built.directory,
        Manifest(**{**built.manifest.__dict__, "tag": "v0.1.0 final"}),
    )
    with pytest.raises(StoreError) as raised:
        store(github).publish(bad, "", NoProgress())
    assert "422 Validation Failed: Release.tag_name custom (tag_name is not a valid tag)" in str(
        raised.value
    )


def test_a_commit_github_does_not_have_says_push_it_first(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    github.pushed = set()
    with pytest.raises(StoreError) as raised:
        store(github).publish(tiny_artifact(tmp_path), "", NoProgress())
    text = str(raised.value)
    assert "Release.target_commitish invalid" in text
    assert text.endswith("push the commit and tag first")
    assert github.releases == {}


def test_a_saml_refusal_says_where_to_authorise_the_token(github: GitHubStandIn) -> None:
    github.faults.append(saml_enforced())
    with pytest.raises(AuthError) as raised:
        store(github).releases()
    text = str(raised.value)
    assert "SAML single sign-on" in text and "contents:" not in text
    assert "authorise the token for the organisation's single sign-on at " in text
    assert "https://github.com/orgs/helionyx/sso?authorization_request=AZSCK" in text


def test_a_read_refused_for_permission_names_the_permission_github_names(
    github: GitHubStandIn,
) -> None:
    github.faults.append(insufficient_permission("contents=read", method="GET"))
    with pytest.raises(AuthError) as raised:
        store(github).releases()
    assert str(raised.value).endswith("the token needs contents: read on the repository")
    github.faults.append(insufficient_permission("contents=write; administration=write"))
    with pytest.raises(AuthError, match="needs contents: write, or administration: write"):
        store(github).releases()


def test_an_expired_storage_address_is_fetched_again_once(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    seed_ours(github, tmp_path, "0.1.0")
    github.expired_urls = 1
    fetched = store(github).fetch("0.1.0", tmp_path / "a", NoProgress())
    assert checksums.first_mismatch(fetched) is None
    github.expired_urls = 2
    with pytest.raises(StoreError) as raised:
        store(github).fetch("0.1.0", tmp_path / "b", NoProgress())
    text = str(raised.value)
    assert "storage host refused the download of manifest.json (403) twice" in text
    assert "contents:" not in text


def test_a_wait_github_did_not_name_is_called_ours(github: GitHubStandIn) -> None:
    github.faults += [secondary_rate_limit(retry_after=None) for _ in range(5)]
    with pytest.raises(StoreError) as raised:
        store(github).releases()
    text = str(raised.value)
    assert "GitHub named no time; our own back-off would wait 240 s more" in text
    assert "GitHub asks" not in text


# -- 4. a create GitHub carried out though its answer was lost ---------------------------------
def test_a_retried_create_that_had_succeeded_carries_on(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    github.faults.append(Fault("/releases", 502, method="POST", applied=True))
    built = tiny_artifact(tmp_path)
    assert store(github).publish(built, "notes", NoProgress()) is Outcome.CREATED
    assert len(github.releases) == 1
    assert github.asset_names("v0.1.0")[-1] == SUMS
    fetched = store(github).fetch("0.1.0", tmp_path / "out", NoProgress())
    assert checksums.first_mismatch(fetched) is None


# -- 5. a public repository reads without a token --------------------------------------------
def test_a_public_repository_lists_and_fetches_without_a_token(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    seed_ours(github, tmp_path, "0.1.0")
    github.public = True
    github.requests.clear()
    anonymous = store(github, token=None)
    assert [r.version for r in anonymous.releases()] == ["0.1.0"]
    fetched = anonymous.fetch("v0.1.0", tmp_path / "out", NoProgress())
    assert checksums.first_mismatch(fetched) is None
    assert github.requests and all(auth is None for _, _, auth in github.requests)


def test_without_a_token_a_private_repository_says_a_token_may_be_missing(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    seed_ours(github, tmp_path, "0.1.0")
    with pytest.raises(NotFound) as raised:
        store(github, token=None).releases()
    assert "a private repository needs GITHUB_TOKEN with contents: read" in str(raised.value)


def test_publishing_without_a_token_is_refused_before_any_request(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="GITHUB_TOKEN is not set; publishing needs a token"):
        store(github, token=None).publish(tiny_artifact(tmp_path), "", NoProgress())
    assert github.requests == []


def test_list_through_the_cli_needs_no_token_for_a_public_repository(
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_ours(github, tmp_path, "0.1.0")
    github.public = True
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    code, out, err = run_cli(["--repo", str(tmp_path), "list", "--store", SPEC], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[:2] == ["0.1.0", COMMIT[:12]]


# -- 6. one version costs a few requests, whatever the history ---------------------------------
@pytest.fixture
def history(github: GitHubStandIn, tmp_path: Path) -> GitHubStandIn:
    """201 releases of ours: three pages of GitHub's 100 (`make bench-github` measures 300)."""
    for minor in range(201):
        seed_ours(github, tmp_path, f"0.{minor}.0", commit_of(minor))
    return github


def test_one_version_costs_at_most_five_requests(history: GitHubStandIn, tmp_path: Path) -> None:
    for ref in ("0.150.0", "v0.151.0", "0.200.0"):
        history.requests.clear()
        fetched = store(history).fetch(ref, tmp_path / ref, NoProgress())
        assert checksums.first_mismatch(fetched) is None
        assert lookups(history) <= 5, (ref, history.requests)


def test_a_sha_and_the_list_read_each_manifest_once_then_from_the_cache(
    history: GitHubStandIn, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    sha = commit_of(42)
    assert store(history, cache=cache).find(sha[:12]).version == "0.42.0"
    history.requests.clear()
    warm = store(history, cache=cache)
    assert warm.find(sha[:12]).version == "0.42.0"
    assert len(warm.releases()) == 201
    assert lookups(history) <= 10, "the list pages only: every manifest came from the cache"


def test_the_cache_never_believes_what_githubs_digest_does_not_vouch_for(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    seed_ours(github, tmp_path, "0.1.0")
    cache = tmp_path / "cache"
    store(github, cache=cache).releases()
    (entry,) = cache.iterdir()
    forged = Manifest.from_json(entry.read_bytes())
    entry.write_text(Manifest(**{**forged.__dict__, "commit": "f" * 40}).to_json())
    assert [r.sha for r in store(github, cache=cache).releases()] == [COMMIT]
    assert Manifest.from_json(entry.read_bytes()).commit == COMMIT, "the entry was replaced"


# -- 7. a table with names the terminal cannot carry ------------------------------------------
def test_a_release_table_prints_on_an_ascii_only_stdout(
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github.seed_release("v1.0.0-été", "main")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    assert main(["--repo", str(tmp_path), "list", "--store", SPEC]) == 0
    ascii_out.flush()
    assert "1.0.0-\\xe9t\\xe9" in raw.getvalue().decode("ascii")

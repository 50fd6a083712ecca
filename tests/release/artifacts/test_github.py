"""The GitHub Releases store against a local stand-in of GitHub's REST API."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import verify
from release.artifacts.github import GitHubStore
from release.artifacts.releasing import Workspace, local_artifact
from release.artifacts.store import Outcome
from release.errors import AlreadyPublished, ArtifactError, AuthError, StoreError
from release.progress import NoProgress
from tests.release.artifacts.github_standin import Fault, GitHubStandIn, serving
from tests.release.conftest import Released, release_cli

pytestmark = pytest.mark.build
TOKEN = "ghs_0123456789secretTOKEN"


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with serving(token=TOKEN) as standin:
        yield standin


def store(github: GitHubStandIn, token: str = TOKEN) -> GitHubStore:
    return GitHubStore("helionyx", "helionyx", token, api_url=github.api_url, backoff=0.01)


def cli_env(github: GitHubStandIn) -> dict[str, str]:
    return {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.api_url}


def test_publish_list_verify_round_trip_through_the_cli(
    released: Released, github: GitHubStandIn
) -> None:
    env = cli_env(github)
    spec = "github:helionyx/helionyx"
    published = release_cli(
        released.repo, "publish", "--version", "v0.1.0", "--store", spec, env=env
    )
    assert published.code == 0, published.stderr
    assert "published" in published.stdout
    release = next(iter(github.releases.values()))
    assert release["tag_name"] == "v0.1.0"
    assert release["target_commitish"] == released.commit
    assert "### Added" in release["body"], "the CHANGELOG section is the release body"
    names = github.asset_names("v0.1.0")
    assert names[-1] == SUMS, "SHA256SUMS is uploaded last, marking the release complete"
    assert {MANIFEST, "requirements.lock", "helionyx-0.1.0-py3-none-any.whl"} <= set(names)

    listing = release_cli(released.repo, "list", "--store", spec, "--format", "json", env=env)
    assert listing.code == 0, listing.stderr
    entries = json.loads(listing.stdout)
    assert entries[0]["version"] == "0.1.0" and entries[0]["sha"] == released.commit

    verified = release_cli(released.repo, "verify", "--version", "0.1.0", "--store", spec, env=env)
    assert verified.code == 0, verified.stderr
    downloads = [r for r in github.requests if r[1].startswith("/assets/")]
    assert downloads and all(auth is None for _, _, auth in downloads), (
        "the token is not sent to the storage host after the redirect"
    )
    everything = published.stdout + published.stderr + listing.stderr + verified.stdout
    assert TOKEN not in everything


def test_republishing_is_a_no_op_and_different_bytes_are_refused(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    built = local_artifact(Workspace(released.repo), "0.1.0")
    target = store(github)
    assert target.publish(built, "notes", NoProgress()) is Outcome.CREATED
    uploads = len(github.asset_names("v0.1.0"))
    assert target.publish(built, "notes", NoProgress()) is Outcome.UNCHANGED
    assert len(github.asset_names("v0.1.0")) == uploads

    github.tamper("v0.1.0", SUMS)
    with pytest.raises(AlreadyPublished, match="different bytes"):
        target.publish(built, "notes", NoProgress())


def test_an_interrupted_publish_is_completed(released: Released, github: GitHubStandIn) -> None:
    built = local_artifact(Workspace(released.repo), "0.1.0")
    target = store(github)
    # The upload of the lock fails for good (after retries): the publish stops half-way.
    github.faults.extend(Fault("/assets", 502, method="POST") for _ in range(5))
    with pytest.raises(StoreError, match=r"502 \(Server Error\) after 5 attempts \(POST"):
        target.publish(built, "notes", NoProgress())
    assert SUMS not in github.asset_names("v0.1.0")
    assert target.publish(built, "notes", NoProgress()) is Outcome.COMPLETED
    assert github.asset_names("v0.1.0")[-1] == SUMS


def test_a_downloaded_release_with_a_changed_byte_fails_verification(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    target = store(github)
    target.publish(local_artifact(Workspace(released.repo), "0.1.0"), "", NoProgress())
    github.tamper("v0.1.0", "helionyx-0.1.0-py3-none-any.whl")
    fetched = target.fetch("0.1.0", tmp_path, NoProgress())
    with pytest.raises(ArtifactError, match="checksum mismatch for helionyx-0.1.0"):
        verify(fetched)


def test_server_errors_and_rate_limits_are_retried_honouring_the_server(
    released: Released, github: GitHubStandIn
) -> None:
    reset = str(int(time.time()) + 1)
    github.faults += [
        Fault("/releases/tags/", 502),
        Fault("/releases/tags/", 429, {"Retry-After": "1"}),
        Fault(
            "/releases/tags/",
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
            {"message": "API rate limit exceeded", "documentation_url": "x"},
        ),
    ]
    started = time.monotonic()
    assert (
        store(github).publish(local_artifact(Workspace(released.repo), "0.1.0"), "", NoProgress())
        is Outcome.CREATED
    )
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 was honoured"


@pytest.mark.parametrize(
    ("where", "method", "status", "body", "expected"),
    [
        ("/releases/tags/", "GET", 401, {"message": "Bad credentials"}, "rejected the token (401"),
        (
            "/releases/tags/",
            "GET",
            403,
            {"message": "Resource not accessible by integration"},
            "403 Resource not accessible",
        ),
        ("/assets", "GET", 404, {"message": "Not Found"}, "(404)"),
        (
            "/releases",
            "POST",
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
            },
            "422 Validation Failed: Release.tag_name already_exists",
        ),
    ],
)
def test_client_errors_become_one_clear_line(
    released: Released,
    github: GitHubStandIn,
    where: str,
    method: str,
    status: int,
    body: dict[str, object],
    expected: str,
) -> None:
    github.faults.append(Fault(where, status, {}, body, method))
    result = release_cli(
        released.repo,
        "publish",
        "--version",
        "0.1.0",
        "--store",
        "github:helionyx/helionyx",
        env=cli_env(github),
    )
    assert result.code != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr
    assert TOKEN not in result.stderr


def test_a_wrong_token_is_refused_without_echoing_it(
    released: Released, github: GitHubStandIn
) -> None:
    with pytest.raises(AuthError) as raised:
        store(github, token="ghs_wrong_secret_value").releases()
    assert "ghs_wrong_secret_value" not in str(raised.value)


def test_listing_follows_pagination(github: GitHubStandIn) -> None:
    for minor in range(130):
        github.seed_release(f"v0.{minor}.0", f"{minor:040x}")
    versions = [r.version for r in store(github).releases()]
    assert len(versions) == 130
    assert len([r for r in github.requests if r[1].endswith("/releases")]) == 2


# -- GitHub as it really behaves ------------------------------------------------------------
def manifest_downloads(github: GitHubStandIn, tag: str) -> int:
    release = next(r for r in github.releases.values() if r["tag_name"] == tag)
    asset = next(a for a in release["all_assets"] if a["name"] == MANIFEST)
    return sum(1 for _, path, _ in github.requests if path == f"/assets/{asset['id']}")


def test_a_tag_without_v_and_a_sha_both_verify_through_the_one_resolver(
    released: Released, github: GitHubStandIn
) -> None:
    store(github).publish(local_artifact(Workspace(released.repo), "0.1.0"), "", NoProgress())
    release = next(iter(github.releases.values()))
    release["tag_name"] = "0.1.0"  # as `gh release create 0.1.0` names it
    github.requests.clear()
    # The session's project is shared: start from a cold manifest cache.
    shutil.rmtree(released.repo / "dist" / "cache" / "github-assets", ignore_errors=True)
    env, spec = cli_env(github), "github:helionyx/helionyx"
    for number, ref in enumerate(("0.1.0", "v0.1.0", released.commit[:12])):
        before = manifest_downloads(github, "0.1.0")
        verified = release_cli(released.repo, "verify", "--version", ref, "--store", spec, env=env)
        assert verified.code == 0, (ref, verified.stderr)
        # Once, then from dist/cache (GitHub's digest vouches for it) on the later runs.
        assert manifest_downloads(github, "0.1.0") - before == (1 if number == 0 else 0)


def test_publishing_into_a_release_made_in_the_web_ui_adds_to_it(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    github.seed_release("v0.1.0", "main", assets={"RELEASE-NOTES.txt": b"hand-written\n"})
    target = store(github)
    built = local_artifact(Workspace(released.repo), "0.1.0")
    assert target.publish(built, "", NoProgress()) is Outcome.ADDED
    assert github.asset_names("v0.1.0")[-1] == SUMS
    assert [r.sha for r in target.releases()] == [released.commit], "never 'main'"
    verify(target.fetch("v0.1.0", tmp_path, NoProgress()))


def test_a_release_whose_manifest_names_another_commit_is_refused(
    released: Released, github: GitHubStandIn
) -> None:
    built = local_artifact(Workspace(released.repo), "0.1.0")
    theirs = json.loads((built.directory / MANIFEST).read_text())
    theirs["commit"] = "f" * 40
    github.seed_release("v0.1.0", "main", assets={MANIFEST: json.dumps(theirs).encode()})
    with pytest.raises(AlreadyPublished, match="built from commit ffffffffffff, not"):
        store(github).publish(built, "", NoProgress())


def test_an_upload_left_in_starter_state_is_replaced(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    built = local_artifact(Workspace(released.repo), "0.1.0")
    # GitHub documents that a failed upload can leave an asset in state "starter" whose name
    # is then taken: the retry gets 422 already_exists until the leftover is deleted.
    github.faults.append(Fault("/assets", 502, method="POST", starter=True))
    assert store(github).publish(built, "", NoProgress()) is Outcome.CREATED
    assert github.asset_names("v0.1.0", state="starter") == []
    verify(store(github).fetch("0.1.0", tmp_path / "a", NoProgress()))


def test_a_publish_that_died_leaving_a_starter_asset_is_completed_next_time(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    built = local_artifact(Workspace(released.repo), "0.1.0")
    github.faults += [Fault("/assets", 502, method="POST", starter=True) for _ in range(5)]
    with pytest.raises(StoreError, match="502"):
        store(github).publish(built, "", NoProgress())
    assert len(github.asset_names("v0.1.0", state="starter")) == 1
    assert store(github).publish(built, "", NoProgress()) is Outcome.COMPLETED
    assert github.asset_names("v0.1.0", state="starter") == []
    verify(store(github).fetch("0.1.0", tmp_path, NoProgress()))


def test_publish_and_verify_follow_a_renamed_repository(
    released: Released, github: GitHubStandIn, tmp_path: Path
) -> None:
    github.rename("helionyx-service")
    env, spec = cli_env(github), "github:helionyx/helionyx"
    published = release_cli(
        released.repo, "publish", "--version", "0.1.0", "--store", spec, env=env
    )
    assert published.code == 0, published.stderr
    assert "has moved" in published.stderr
    verified = release_cli(released.repo, "verify", "--version", "0.1.0", "--store", spec, env=env)
    assert verified.code == 0, verified.stderr
    assert "Traceback" not in published.stderr + verified.stderr

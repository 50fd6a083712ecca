"""The GitHub Releases store against a local stand-in of GitHub's REST API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from release.artifact import MANIFEST, SUMS, verify
from release.errors import AlreadyPublished, ArtifactError, AuthError, StoreError
from release.github import GitHubStore
from release.progress import NoProgress
from release.releasing import Workspace, local_artifact
from release.store import Outcome
from tests.release.conftest import Released, release_cli
from tests.release.github_standin import Fault, GitHubStandIn, serving

pytestmark = pytest.mark.e2e
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
    github.faults.extend(Fault("/assets", 502) for _ in range(5))
    with pytest.raises(StoreError, match="502 after 5 attempts"):
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
            "422 Validation Failed: already_exists",
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

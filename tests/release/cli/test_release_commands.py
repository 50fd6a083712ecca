"""Bad input through `python -m release`: one line, non-zero exit, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from release.agent.protocol import MANIFEST
from release.artifacts.artifact import Manifest, write_manifest
from tests.release.conftest import REPO, Released, git, release_cli, tree_listing

pytestmark = pytest.mark.build


def snapshot(repo: Path) -> tuple[object, ...]:
    return (
        tree_listing(repo),
        git(repo, "tag", "--list"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "status", "--porcelain"),
    )


def assert_refused(
    repo: Path, args: list[str], expected: str, env: dict[str, str] | None = None
) -> None:
    before = snapshot(repo)
    result = release_cli(repo, *args, env=env)
    assert result.code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(repo) == before


def test_a_dirty_tree_is_refused(released: Released) -> None:
    scratch = released.repo / "scratch.txt"
    scratch.write_text("uncommitted\n")
    try:
        assert_refused(released.repo, ["release", "--version", "0.2.0"], "uncommitted changes")
    finally:
        scratch.unlink()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["release", "--version", "0.0.9"], "not greater than the latest release 0.1.0"),
        (["release", "--version", "0.1.0"], "tag v0.1.0 already exists"),
        (["release", "--version", "v0.2"], "'v0.2' is not a release version"),
        (["release", "--version", "0.2.0"], "Unreleased section of CHANGELOG.md is empty"),
        (["release", "--bump", "giant"], "unknown BUMP 'giant'"),
        (["list", "--store", "ftp:somewhere"], "unknown store scheme 'ftp'"),
        (
            ["publish", "--version", "0.1.0", "--store", "github:helionyx/helionyx"],
            "GITHUB_TOKEN is not set; publishing needs a token",
        ),
        (["verify", "--version", "9.9.9"], "unknown version '9.9.9'"),
        (["verify", "--version", ""], "no version given"),
        (["publish", "--version", "9.9.9", "--store", "dir:/tmp/x"], "unknown version '9.9.9'"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(
    released: Released, args: list[str], expected: str
) -> None:
    assert_refused(released.repo, args, expected, env={"GITHUB_TOKEN": ""})


def test_a_tampered_artifact_in_a_store_is_named_and_not_cached(
    released: Released, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(released.artifact, store / "0.1.0")
    lock = store / "0.1.0" / "requirements.lock"
    lock.write_text(lock.read_text().replace("fastapi==", "fastapl=="))
    assert_refused(
        released.repo,
        ["verify", "--version", "v0.1.0", "--store", f"dir:{store}"],
        "checksum mismatch for requirements.lock",
    )


def test_a_manifest_from_another_commit_than_the_tag_is_refused(
    released: Released, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    forged = store / "0.1.0"
    shutil.copytree(released.artifact, forged)
    manifest = Manifest.from_json((forged / MANIFEST).read_text())
    other = "f" * 40
    (forged / MANIFEST).unlink()
    write_manifest(forged, Manifest(**{**manifest.__dict__, "commit": other}))
    assert_refused(
        released.repo,
        ["verify", "--version", "0.1.0", "--store", f"dir:{store}"],
        f"built from {other[:12]}, but its tag points at {released.commit[:12]}",
    )


def test_dir_store_publish_list_verify_round_trip(released: Released, tmp_path: Path) -> None:
    store = f"dir:{tmp_path / 'published'}"
    first = release_cli(released.repo, "publish", "--version", "v0.1.0", "--store", store)
    assert first.code == 0, first.stderr
    assert first.stdout.strip().endswith("0.1.0: published")
    again = release_cli(released.repo, "publish", "--version", "0.1.0", "--store", store)
    assert again.code == 0
    assert "already published with identical bytes" in again.stdout

    listing = release_cli(released.repo, "list", "--store", store, "--format", "json")
    assert listing.code == 0
    entries = json.loads(listing.stdout)
    assert [(e["version"], e["sha"]) for e in entries] == [("0.1.0", released.commit)]
    assert {"version", "sha", "built_at", "size"} <= set(entries[0])
    assert entries[0]["size"] > 1_000_000

    verified = release_cli(released.repo, "verify", "--version", "0.1.0", "--store", store)
    assert verified.code == 0, verified.stderr
    assert f"verified 0.1.0 ({released.commit})" in verified.stdout
    assert (released.repo / "dist" / "cache" / "0.1.0" / MANIFEST).is_file()


def test_a_store_refuses_the_same_version_with_different_bytes(
    released: Released, tmp_path: Path
) -> None:
    target = tmp_path / "published" / "0.1.0"
    shutil.copytree(released.artifact, target)
    sums = target / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("  requirements.lock", "  requirements.lock "))
    assert_refused(
        released.repo,
        ["publish", "--version", "0.1.0", "--store", f"dir:{tmp_path / 'published'}"],
        "already holds 0.1.0 with different bytes",
    )


def test_make_releases_available_json_prints_only_json(released: Released) -> None:
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "releases-available",
            f"STORE=dir:{released.repo / 'dist' / 'releases'}",
            "FORMAT=json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["version"] == "0.1.0"

"""`make release` and a release that changes data: no tag without Migration and Rollback notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.release.conftest import git, make_project_repo, release_cli

pytestmark = pytest.mark.build


def test_a_changed_data_contract_without_notes_is_not_tagged(tmp_path: Path) -> None:
    repo = make_project_repo(tmp_path / "project")
    git(repo, "tag", "-a", "v0.1.0", "-m", "Helionyx 0.1.0")
    projections = repo / "src" / "helionyx" / "domain" / "projections.py"
    projections.write_text(
        projections.read_text().replace("SCHEMA_VERSION = 1\n", "SCHEMA_VERSION = 2\n", 1)
    )
    log = repo / "CHANGELOG.md"
    log.write_text(log.read_text().replace("## [Unreleased]\n", "## [Unreleased]\n\n- Tags.\n", 1))
    git(repo, "commit", "--quiet", "-am", "feat: tags")
    head, changelog = git(repo, "rev-parse", "HEAD"), log.read_text()

    refused = release_cli(repo, "release", "--version", "0.2.0")

    assert refused.code != 0
    assert refused.stderr.strip().splitlines() == [
        "error: this release changes data (projections schema 1 -> 2) but CHANGELOG.md's "
        "Unreleased section has no Migration or Rollback notes; add '### Migration' (what the "
        "deploy does, MIGRATE=1 or not) and '### Rollback' (whether and how to go back) under "
        "'## [Unreleased]'"
    ]
    assert "v0.2.0" not in git(repo, "tag", "--list")
    assert git(repo, "rev-parse", "HEAD") == head and log.read_text() == changelog

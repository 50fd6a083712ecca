"""The GitHub Actions workflows: valid, pinned, least privilege, and calling real make targets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def make_targets() -> set[str]:
    """Every target the Makefile defines."""
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.MULTILINE))


def test_there_are_ci_and_release_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


def test_every_workflow_validates_against_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(workflow: Path) -> None:
    code = "\n".join(
        line for line in workflow.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    called = set(re.findall(r"\bmake\s+(?:-\S+\s+)*([a-z][\w-]*)", code))
    assert called, "workflows call make targets, as a developer would"
    assert called <= make_targets(), called - make_targets()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_full_sha_with_the_version(workflow: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)(.*)", workflow.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action
        assert re.search(r"#\s*v\d+(\.\d+)*", comment), f"{action} has no version comment"


def test_only_the_publish_job_may_write_and_only_contents() -> None:
    text = (REPO / ".github" / "workflows" / "release.yml").read_text()
    publish = text[text.index("  publish:") :]
    permissions = re.search(r"permissions:\n((?:\s{6}\S.*\n)+)", publish)
    assert permissions is not None
    assert permissions.group(1).split() == ["contents:", "write"]
    assert text.count("write") == 3, "contents (publish), id-token and attestations (build)"
    assert "release-guard" in text, "a tag not on main or without CHANGELOG section is refused"

"""Promotion and the staging gate on the real test node (issue 16)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.release.conftest import Result
from tests.release.deploykit import NodeHandle, Project, deploy, setup_env, wait_until

pytestmark = pytest.mark.e2e

SOAK = 4


@pytest.fixture
def gated(project: Project) -> Iterator[Project]:
    """The shared project with live behind the staging gate, for this test only."""
    live = project.repo / "deployment" / "environments" / "live.toml"
    before = live.read_text()
    live.write_text(before + f'requires = "staging"\nsoak = {SOAK}\n')
    try:
        yield project
    finally:
        live.write_text(before)


def promote(project: Project, node: NodeHandle, *extra: str) -> Result:
    args = ["promote", "--from", "staging", "--to", "live", "--store", project.store, *extra]
    return project.cli(*args, env=node.env)


def test_live_takes_only_what_staging_served_for_its_soak(gated: Project, node: NodeHandle) -> None:
    project, shas = gated, gated.shas
    for env in ("staging", "live"):
        setup_env(project, node, env)
    assert deploy(project, node, "staging", "0.1.0").code == 0
    started = time.monotonic()

    early = promote(project, node)
    assert early.code == 2
    last = early.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: live takes only what staging verified: {shas['0.1.0'][:12]} has served on "
        f"staging for "
    )
    assert f"of the {SOAK} s soak:" in last and "s to go" in last
    assert node.current("live") is None

    def promoted() -> Result | None:
        done = promote(project, node)
        return done if done.code == 0 else None

    done = wait_until(promoted, 60, "the soak to end")
    assert time.monotonic() - started >= SOAK
    assert f"promoted 0.1.0 ({shas['0.1.0'][:12]}) to live" in done.stdout
    assert node.current("live") == shas["0.1.0"]

    straight = deploy(project, node, "live", "0.2.0")
    assert straight.code == 2 and "was never deployed to staging successfully" in straight.stderr
    assert node.current("live") == shas["0.1.0"]
    forced = project.cli(
        "deploy",
        "--env",
        "live",
        "--version",
        "0.2.0",
        "--store",
        project.store,
        "--force",
        "--reason",
        "hotfix while staging is rebuilt",
        env=node.env,
    )
    assert forced.code == 0, forced.stderr
    finish = json.loads(node.ssh("grep '\"finish\"' /opt/helionyx/live/deploy-log.jsonl | tail -1"))
    assert finish["forced"] == "hotfix while staging is rebuilt"
    assert finish["skipped"].endswith("was never deployed to staging successfully")
    assert finish["operator"]

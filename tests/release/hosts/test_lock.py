"""The environment lock: held, reported, stale, cleared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.release.deploykit import NodeHandle, Project, deploy, deploy_in_background, setup_env

pytestmark = pytest.mark.node


def test_unlock_refuses_a_live_holder_and_clears_a_dead_one(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "dev")
    holder = deploy_in_background(
        project, node, "dev", "0.1.0", tmp_path / "err", HELIONYX_PAUSE_AFTER="lock"
    )
    holder.wait_for("paused after lock")
    refused = project.cli("unlock", "--env", "dev", env=node.env)
    assert refused.code != 0
    assert f"pid {holder.process.pid}" in refused.stderr and "still running" in refused.stderr

    held = project.cli("status", "--env", "dev", env=node.env)
    assert f"pid {holder.process.pid}" in held.stdout

    holder.kill()
    cleared = project.cli("unlock", "--env", "dev", env=node.env)
    assert cleared.code == 0, cleared.stderr
    assert "stale: its process is gone" in cleared.stdout
    assert project.cli("unlock", "--env", "dev", env=node.env).stdout.strip() == "dev is not locked"
    assert deploy(project, node, "dev", "0.1.0").code == 0

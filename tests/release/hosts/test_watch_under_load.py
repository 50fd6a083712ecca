"""The watch on the node while writers saturate the service (issue #25, finding 4): a release
handling the load it is given is never rolled back for it."""

from __future__ import annotations

import json

import pytest

from tests.release.deploykit import IngestLoad, NodeHandle, Project, event_ids, ingest_url

pytestmark = pytest.mark.node


def test_a_release_under_saturating_writes_passes_its_watch(
    project: Project, node: NodeHandle
) -> None:
    staging = project.repo / "deployment" / "environments" / "staging.toml"
    before = staging.read_text()
    staging.write_text(before + "watch = 8\n")
    listen = {**node.env, "DEPLOY_LISTEN_ADDRESS": "0.0.0.0"}  # the writers here reach it
    env_file = str(project.env_file("staging"))
    try:
        assert (
            project.cli("setup-host", "--env", "staging", "--env-file", env_file, env=listen).code
            == 0
        )
        first = ["deploy", "--env", "staging", "--store", project.store, "--version"]
        assert project.cli(*first, "0.1.0", env=listen).code == 0
        with IngestLoad(ingest_url(node, "staging"), writers=8) as load:
            load.wait_for_more(100)
            result = project.cli(*first, "0.2.0", env=listen)
            load.wait_for_more(100)
    finally:
        staging.write_text(before)
    assert result.code == 0, result.stderr
    assert "watch" in result.stdout + result.stderr
    assert node.current("staging") == project.shas["0.2.0"]
    code, health = node.http("staging", "/health")
    assert code == 200 and health["version"] == "0.2.0" and health["server_errors"] == 0
    log = "/opt/helionyx/staging/deploy-log.jsonl"
    finish = json.loads(node.ssh(f"grep '\"finish\"' {log} | tail -1"))
    assert (finish["sha"], finish["outcome"]) == (project.shas["0.2.0"], "succeeded")
    stored = event_ids(node, "staging")
    assert set(load.acknowledged) <= set(stored) and len(stored) == len(set(stored))

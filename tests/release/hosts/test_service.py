"""restart, stop, logs and status of a deployed environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.release.deploykit import NodeHandle, Project, deploy, setup_env, status_json

pytestmark = pytest.mark.node


def test_status_restart_stop_and_logs(project: Project, node: NodeHandle) -> None:
    setup_env(project, node, "live")
    assert deploy(project, node, "live", "0.1.0").code == 0
    assert deploy(project, node, "live", "0.2.0").code == 0

    code, status = status_json(project, node, "live")
    assert code == 0
    assert {"env", "version", "sha", "deployed_at", "deployed_by", "healthy", "releases"} <= set(
        status
    )
    assert status["env"] == "live" and status["version"] == "0.2.0" and status["healthy"]
    assert status["sha"] == project.shas["0.2.0"]
    assert status["deployed_from"] == project.store
    assert [(r["version"], r["state"]) for r in status["releases"]] == [
        ("0.2.0", "current"),
        ("0.1.0", "previous"),
    ]
    text = project.cli("status", "--env", "live", env=node.env)
    assert text.code == 0
    for expected in ("current    0.2.0", "service    active (running)", "verdict    healthy"):
        assert expected in text.stdout

    pid = node.ssh("systemctl show -p MainPID --value helionyx-live").strip()
    restarted = project.cli("restart", "--env", "live", env=node.env)
    assert restarted.code == 0, restarted.stderr
    assert "healthy" in restarted.stdout
    assert node.ssh("systemctl show -p MainPID --value helionyx-live").strip() != pid

    logs = project.cli("logs", "--env", "live", "--lines", "50", env=node.env)
    assert logs.code == 0
    assert "helionyx.startup" in logs.stdout

    stopped = project.cli("stop", "--env", "live", env=node.env)
    assert stopped.code == 0
    code, status = status_json(project, node, "live")
    assert code != 0 and status["healthy"] is False
    assert status["service"]["state"] == "inactive"
    assert project.cli("restart", "--env", "live", env=node.env).code == 0
    assert status_json(project, node, "live")[0] == 0


def test_setup_host_is_idempotent_and_refuses_placeholders_and_readable_secrets(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    again = project.cli(
        "setup-host",
        "--env",
        "staging",
        "--env-file",
        str(project.env_file("staging")),
        env=node.env,
    )
    assert again.code == 0 and "nothing to change" in again.stdout
    before = node.listing()
    template = tmp_path / "template.env"
    template.write_text((project.repo / ".env.template").read_text())
    template.chmod(0o600)
    refused = project.cli(
        "setup-host", "--env", "staging", "--env-file", str(template), env=node.env
    )
    assert refused.code != 0
    assert "still holds template placeholders" in refused.stderr
    assert "HELIONYX_API_TOKEN" in refused.stderr

    readable = tmp_path / "readable.env"
    readable.write_text(project.env_file("staging").read_text())
    readable.chmod(0o644)
    refused = project.cli(
        "setup-host", "--env", "staging", "--env-file", str(readable), env=node.env
    )
    assert refused.code != 0
    (line,) = refused.stderr.strip().splitlines()
    assert "is readable by others (mode 0644)" in line and f"chmod 600 {readable}" in line
    assert node.listing() == before
    assert node.ssh("id -u helionyx").strip().isdigit()
    assert node.ssh("systemctl is-enabled helionyx-staging").strip() == "enabled"

"""Deploy, rollback and restart under steady load: systemd keeps the socket, no request fails."""

from __future__ import annotations

import pytest

from benchmarks.loadgen import Load, Phase
from tests.release.deploykit import TOKEN, NodeHandle, Project, deploy, setup_env, wait_until

pytestmark = pytest.mark.node


def test_no_request_fails_during_deploy_rollback_and_restart(
    project: Project, node: NodeHandle
) -> None:
    # Listen on the node's address so the load can come from this machine, as clients would.
    node.env["DEPLOY_LISTEN_ADDRESS"] = "0.0.0.0"
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.1.0").code == 0
    assert node.ssh("systemctl is-active helionyx-staging.socket").strip() == "active"
    base = f"http://{node.env['DEPLOY_HOST']}:8001"

    # And clients that keep their connection between requests: at each switch it changes
    # hands with the socket (helionyx.adoption) instead of being closed under them.
    kept = Load(base, TOKEN, clients=4, max_seconds=240, keep_alive=True)
    with Load(base, TOKEN, clients=20, max_seconds=240) as load, kept:
        load.mark("baseline")
        baseline = load.phases[-1]
        wait_until(lambda: baseline.requests >= 100 or None, 30, "the load to get going")
        outcomes: dict[str, Phase] = {}
        for step, args in (
            (
                "deploy",
                ["deploy", "--env", "staging", "--version", "0.2.0", "--store", project.store],
            ),
            ("rollback", ["rollback", "--env", "staging"]),
            ("restart", ["restart", "--env", "staging"]),
        ):
            ended = load.mark(step)
            outcomes[ended.name] = ended
            kept.mark(step)
            result = project.cli(*args, env=node.env)
            assert result.code == 0, result.stderr
        outcomes["restart"] = load.stop()
        kept.stop()

    for name in ("baseline", "deploy", "rollback", "restart"):
        phase = outcomes[name]
        print(phase.summary())
        assert phase.requests > 20, f"{name}: the load kept flowing"
        assert phase.failed == 0, phase.summary()
    for phase in kept.phases[1:]:
        print("kept alive:", phase.summary())
        assert phase.requests > 20 and phase.failed == 0, phase.summary()
    assert node.http("staging", "/health")[1]["version"] == "0.1.0"


def test_a_host_set_up_before_socket_activation_is_migrated(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0
    # Make it look like a host set up by the previous version: no socket unit, the service
    # binding the port itself.
    node.ssh(
        "systemctl disable --now helionyx-dev.socket && rm /etc/systemd/system/helionyx-dev.socket"
        " && sed -i '/helionyx-dev.socket/d' /etc/systemd/system/helionyx-dev.service"
        " && systemctl daemon-reload && systemctl restart helionyx-dev.service"
    )
    wait_until(lambda: node.http("dev", "/health")[0] == 200 or None, 20, "the old-style service")
    assert node.ssh("systemctl is-active helionyx-dev.socket", check=False).strip() != "active"

    result = deploy(project, node, "dev", "0.2.0")
    assert result.code == 0, result.stderr
    assert node.ssh("systemctl is-active helionyx-dev.socket").strip() == "active"
    assert node.ssh("systemctl is-enabled helionyx-dev.socket").strip() == "enabled"
    assert node.http("dev", "/health")[1]["version"] == "0.2.0"
    assert "inherited socket" in node.ssh("journalctl -u helionyx-dev -n 30 --no-pager")

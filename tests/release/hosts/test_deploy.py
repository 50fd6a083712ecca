"""Deploys to a real systemd node over real SSH: what must hold after each."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helionyx.servicekit import poll
from tests.release.conftest import git
from tests.release.deploykit import (
    NodeHandle,
    Project,
    deploy,
    deploy_in_background,
    setup_env,
    status_json,
    wait_until,
)

pytestmark = pytest.mark.node


def test_a_deploy_serves_the_release_built_offline_with_bytecode(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "staging")
    sha = project.shas["0.1.0"]
    result = deploy(project, node, "staging", "v0.1.0")
    assert result.code == 0, result.stderr
    for step in (
        "fetch + verify",
        "connect",
        "lock",
        "upload",
        "build",
        "go live",
        "prune",
    ):
        assert f"  {step}" in result.stdout, f"step {step!r} is reported with its duration"
    assert f"deployed 0.1.0 ({sha[:12]}) to staging" in result.stdout
    assert result.stdout.startswith(f"deploying 0.1.0 ({sha[:12]}) to staging on ")

    code, health = node.http("staging", "/health")
    main_pid = node.ssh("systemctl show -p MainPID --value helionyx-staging.service").strip()
    assert code == 200
    assert health == {
        "status": "healthy",
        "environment": "staging",
        "version": "0.1.0",
        "commit": sha,
        "server_errors": 0,
        # Under its unit it can hand its socket to the next release (NotifyAccess=all); the
        # pid says which process answered, the unit's main one.
        "handover": {"protocol": 2, "pid": int(main_pid)},
    }
    assert node.current("staging") == sha
    assert node.ssh("ip route | grep -c default || true").strip() == "0", (
        "the node has no route out"
    )
    compiled = node.ssh(
        f"find /opt/helionyx/staging/releases/{sha}/venv -name '*.pyc' -path '*helionyx*' | wc -l"
    )
    assert int(compiled) > 10, "bytecode was compiled at install time"
    owner = node.ssh(f"stat -c '%U %a' /opt/helionyx/staging/releases/{sha}").split()
    assert owner == ["root", "755"], "release dirs are not writable by the service user"
    config = node.ssh("stat -c '%U %a' /etc/helionyx/staging.env").split()
    assert config == ["root", "600"]


def test_redeploying_the_current_healthy_release_is_a_no_op(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0
    pid = node.ssh("systemctl show -p MainPID --value helionyx-dev").strip()
    again = deploy(project, node, "dev", "0.1.0")
    assert again.code == 0
    assert "already deployed" in again.stdout
    assert node.ssh("systemctl show -p MainPID --value helionyx-dev").strip() == pid, "no restart"
    # Releases left behind (as killed deploys leave them) are pruned by a no-op too.
    sha = project.shas["0.1.0"]
    for n in range(6):
        node.ssh(f"cp -a /opt/helionyx/dev/releases/{sha} /opt/helionyx/dev/releases/{n:040x}")
    pruned = deploy(project, node, "dev", "0.1.0")
    assert pruned.code == 0 and "already deployed" in pruned.stdout
    assert "pruned 2 old release(s)" in pruned.stdout
    assert len(node.ssh("ls /opt/helionyx/dev/releases").split()) == 5
    assert node.current("dev") == sha


def test_every_event_survives_deploy_and_rollback(project: Project, node: NodeHandle) -> None:
    setup_env(project, node, "live")
    assert deploy(project, node, "live", "0.1.0").code == 0
    first = [node.ingest("live", f"todo: before {i}") for i in range(5)]
    assert deploy(project, node, "live", "0.2.0").code == 0
    second = [node.ingest("live", f"todo: after {i}") for i in range(5)]

    back = project.cli("rollback", "--env", "live", env=node.env)
    assert back.code == 0, back.stderr
    assert f"rolled back live to 0.1.0 ({project.shas['0.1.0'][:12]})" in back.stdout
    code, health = node.http("live", "/health")
    assert code == 200 and health["version"] == "0.1.0"

    events = node.ssh("cat /var/lib/helionyx/live/events/events-*.jsonl")
    logged = {json.loads(line)["event_id"] for line in events.splitlines()}
    assert set(first + second) <= logged
    code, todos = node.http("live", "/api/v1/todos", token=True)
    assert [t["text"] for t in todos] == [f"todo: before {i}"[6:] for i in range(5)] + [
        f"after {i}" for i in range(5)
    ]
    # The projections equal a rebuild from the log.
    node.ssh("systemctl stop helionyx-live")
    node.ssh(
        "cd /var/lib/helionyx/live && set -a && . /etc/helionyx/live.env && set +a && "
        "runuser -u helionyx -- /opt/helionyx/live/current/venv/bin/python -m helionyx "
        "rebuild-projections --env live"
    )
    node.ssh("systemctl start helionyx-live")
    node.ssh(
        "for i in $(seq 100); do curl -sf localhost:8002/health/ready && break; sleep 0.1; done"
    )
    code, rebuilt = node.http("live", "/api/v1/todos", token=True)
    assert rebuilt == todos


def test_an_unhealthy_release_is_rolled_back_automatically(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.2.0").code == 0
    broken = deploy(project, node, "staging", "0.2.1")
    assert broken.code != 0
    assert "rolled back to" in broken.stderr
    assert "deliberately broken release" in broken.stderr, "the journal's last lines are shown"
    assert "last journal lines:" in broken.stderr
    code, health = node.http("staging", "/health")
    assert health["version"] == "0.2.0"
    assert node.current("staging") == project.shas["0.2.0"]

    listed = project.cli("releases", "--env", "staging", "--format", "json", env=node.env)
    states = {row["version"]: row["state"] for row in json.loads(listed.stdout)}
    assert states == {"0.2.0": "current", "0.2.1": "failed"}
    code, status = status_json(project, node, "staging")
    assert code == 0 and status["healthy"] is True and status["version"] == "0.2.0"


def test_concurrent_deploys_to_one_env_let_exactly_one_proceed(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    results = {}

    def run(name: str, version: str) -> None:
        results[name] = deploy(project, node, "staging", version)

    threads = [
        threading.Thread(target=run, args=(n, v)) for n, v in (("a", "0.1.0"), ("b", "0.2.0"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    codes = sorted(r.code for r in results.values())
    assert codes[0] == 0 and codes[1] != 0, {k: (r.code, r.stderr) for k, r in results.items()}
    loser = next(r for r in results.values() if r.code != 0)
    assert "staging is locked by" in loser.stderr and "pid" in loser.stderr
    assert len(loser.stderr.strip().splitlines()) == 1


def test_with_wait_concurrent_deploys_run_one_after_the_other(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    first = deploy_in_background(
        project, node, "staging", "0.1.0", tmp_path / "first.log", HELIONYX_PAUSE_AFTER="lock"
    )
    first.wait_for("paused after lock")
    second = deploy_in_background(
        project, node, "staging", "0.2.0", tmp_path / "second.log", "--wait", "60"
    )
    said = tmp_path / "second.out"
    wait_until(lambda: "waiting up to 60 s" in said.read_text() or None, 60, "the second to wait")
    assert "staging is locked by" in said.read_text()
    # Both agents (and whatever they start) yield the CPU to the services.
    agents = node.ssh("ps -eo pid=,ni=,args= | grep '[i]mport base64,sys,zlib'").splitlines()
    assert len(agents) >= 2 and {a.split()[1] for a in agents} == {"10"}, agents
    # And so does each one's SSH session, which the scheduler weighs against the service's.
    groups = node.ssh(";".join(f"cat /proc/{a.split()[0]}/autogroup" for a in agents))
    assert [g.split()[-1] for g in groups.splitlines()] == ["10"] * len(agents), groups
    assert first.resume() == 0, first.stderr()
    assert second.process.wait(timeout=120) == 0, second.stderr()
    finishes = [
        json.loads(line)
        for line in node.ssh("cat /opt/helionyx/staging/deploy-log.jsonl").splitlines()
        if '"finish"' in line
    ]
    assert [(f["version"], f["outcome"]) for f in finishes] == [
        ("0.1.0", "succeeded"),
        ("0.2.0", "succeeded"),
    ]
    assert node.http("staging", "/health")[1]["version"] == "0.2.0"
    service = node.ssh("ps -o ni= -p $(systemctl show -p MainPID --value helionyx-staging)")
    assert service.strip() == "0", "the service runs at its own priority, not the agent's"


def test_environments_share_nothing_but_the_host(project: Project, node: NodeHandle) -> None:
    for env in ("dev", "staging"):
        setup_env(project, node, env)
    assert deploy(project, node, "staging", "0.1.0").code == 0
    staging = node.ssh(
        "find /opt/helionyx/staging /var/lib/helionyx/staging -printf '%p %s %T@\\n' | sort"
    )
    staging_pid = node.ssh("systemctl show -p MainPID --value helionyx-staging")
    assert deploy(project, node, "dev", "0.2.0").code == 0
    assert deploy(project, node, "dev", "0.1.0").code == 0
    assert (
        node.ssh(
            "find /opt/helionyx/staging /var/lib/helionyx/staging -printf '%p %s %T@\\n' | sort"
        )
        == staging
    )
    assert node.ssh("systemctl show -p MainPID --value helionyx-staging") == staging_pid
    assert node.http("dev", "/health")[1]["version"] == "0.1.0"
    assert node.http("staging", "/health")[1]["version"] == "0.1.0"
    assert node.current("dev") == project.shas["0.1.0"]


def test_the_deploy_log_records_every_deploy_rollback_and_failure(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "live")
    deploy(project, node, "live", "0.1.0")
    deploy(project, node, "live", "0.2.0")
    deploy(project, node, "live", "0.2.1")  # fails and rolls back
    project.cli("rollback", "--env", "live", env=node.env)
    lines = node.ssh("cat /opt/helionyx/live/deploy-log.jsonl").splitlines()
    finishes = [json.loads(line) for line in lines if json.loads(line)["step"] == "finish"]
    summary = [(f["action"], f["version"], f["outcome"]) for f in finishes]
    assert summary == [
        ("deploy", "0.1.0", "succeeded"),
        ("deploy", "0.2.0", "succeeded"),
        ("deploy", "0.2.1", "rolled_back"),
        ("rollback", "0.1.0", "succeeded"),
    ]
    for finish in finishes:
        for key in ("sha", "previous_sha", "operator", "started_at", "ended_at", "deploy_id"):
            assert key in finish
    assert finishes[1]["previous_sha"] == project.shas["0.1.0"]
    steps = {json.loads(line)["step"] for line in lines}
    assert {"prepare", "build", "go live", "prune", "finish"} <= steps

    _, status = status_json(project, node, "live")
    assert status["version"] == "0.1.0"
    assert status["deployed_at"] == finishes[-1]["ended_at"]
    assert status["deployed_by"] == finishes[-1]["operator"]


def test_a_dev_build_deploys_to_dev_by_version_or_sha(project: Project, node: NodeHandle) -> None:
    sha = project.dev_build("dev-for-dev")
    setup_env(project, node, "dev")
    result = deploy(project, node, "dev", sha[:12])
    assert result.code == 0, result.stderr
    assert node.http("dev", "/health")[1]["commit"] == sha


def test_retention_keeps_five_good_releases_and_never_current_or_previous(
    project: Project, node: NodeHandle
) -> None:
    builds = [project.dev_build(f"retention-{i}") for i in range(4)]
    setup_env(project, node, "dev")
    sequence = ["0.1.0", "0.2.0", builds[0], builds[1], "0.2.1", builds[2], builds[3]]
    results = [deploy(project, node, "dev", ref) for ref in sequence]
    outcomes = [r.code for r in results]
    assert outcomes == [0, 0, 0, 0, 1, 0, 0], [r.stderr[-1500:] for r in results[4:]]
    kept = set(node.ssh("ls /opt/helionyx/dev/releases").split())
    assert kept == {builds[3], builds[2], builds[1], builds[0], project.shas["0.2.0"]}
    assert node.current("dev") == builds[3]
    assert node.ssh("readlink /opt/helionyx/dev/previous").strip().endswith(builds[2])


def test_a_release_links_what_it_shares_with_the_last_one_and_still_stands_alone(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "dev")
    first, second = project.shas["0.1.0"], project.shas["0.2.0"]
    assert deploy(project, node, "dev", "0.1.0").code == 0
    result = deploy(project, node, "dev", "0.2.0")
    assert result.code == 0, result.stderr
    assert f"identical file(s) linked from {first[:12]}" in result.stdout
    assert "venv (dependencies linked)" in result.stdout, "same lock: dependencies not rebuilt"
    releases = "/opt/helionyx/dev/releases"
    wheelhouse_file = node.ssh(f"ls {releases}/{second}/wheelhouse | head -1").strip()
    assert node.ssh(f"stat -c %h {releases}/{second}/wheelhouse/{wheelhouse_file}").strip() == "2"

    # Pruning the donor drops only its names: the new release keeps every file it links.
    node.ssh(f"rm -rf {releases}/{first} && systemctl restart helionyx-dev.service")

    def ready() -> Any:
        code, body = node.http("dev", "/health/ready")
        return body if code == 200 else None

    assert poll(ready, 30, "the service to come back")["commit"] == second
    assert "Running uvicorn" in node.ssh(f"{releases}/{second}/venv/bin/uvicorn --version"), (
        "the venv's scripts work after the rename from .partial"
    )

    # A changed lock (even by a byte) means a fresh venv from the wheelhouse.
    lock = project.repo / "requirements" / "runtime.txt"
    lock.write_text(lock.read_text() + "# relocked\n")
    git(project.repo, "add", str(lock))
    changed = project.dev_build("relocked")
    rebuilt = deploy(project, node, "dev", changed)
    assert rebuilt.code == 0, rebuilt.stderr
    assert "venv (dependencies linked)" not in rebuilt.stdout
    assert "· build: unpack" in rebuilt.stdout and ", venv " in rebuilt.stdout
    assert node.http("dev", "/health")[1]["commit"] == changed

"""Faults injected on the real node: a full disk, a reboot, a dropped connection, a killed
service, a clock gone backwards. Each ends with the host truthful and a healthy release serving."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.release.conftest import git
from tests.release.deploykit import (
    IngestLoad,
    NodeHandle,
    Project,
    deploy,
    deploy_in_background,
    event_ids,
    harness,
    ingest_url,
    never_ready_build,
    setup_env,
    status_json,
    wait_until,
)

pytestmark = pytest.mark.node

RELEASES = "/opt/helionyx/{env}/releases"
BASE = "/opt/helionyx/dev"


def healthy_commit(node: NodeHandle, env: str) -> str | None:
    """The commit /health/ready reports, or None while it does not answer 200."""
    code, body = node.http(env, "/health/ready")
    return body.get("commit") if code == 200 and isinstance(body, dict) else None


def relocked_build(project: Project, label: str) -> str:
    """A dev build whose requirements.lock differs by a comment: its venv is built afresh."""
    lock = project.repo / "requirements" / "runtime.txt"
    lock.write_text(lock.read_text() + f"# {label}\n")
    git(project.repo, "add", str(lock))
    return project.dev_build(label)


def test_a_full_disk_during_the_venv_build_fails_cleanly_and_the_old_release_serves(
    project: Project, node: NodeHandle
) -> None:
    # A small filesystem of its own for dev (tmpfs: ENOSPC is ENOSPC, and loop devices are not
    # available inside the container).
    base = "/opt/helionyx/dev"
    node.ssh(f"mkdir -p {base} && mount -t tmpfs -o size=140m helionyx-small {base}")
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0
    good = project.shas["0.1.0"]
    # Leave room for the upload (a few files; the rest is linked) but not for a new venv.
    node.ssh(
        f"free=$(df --output=avail -k {base} | tail -1) && "
        f"fallocate -l $(( (free - 8 * 1024) * 1024 )) {base}/ballast"
    )
    failed = deploy(project, node, "dev", relocked_build(project, "disk full"))
    assert failed.code != 0
    (line,) = failed.stderr.strip().splitlines()
    assert "No space left on device" in line, line
    assert node.current("dev") == good
    assert healthy_commit(node, "dev") == good, "the old release keeps serving"
    assert node.ssh(f"ls -A {base}/releases").split() == [good], "nothing half-made is left"

    node.ssh(f"rm -f {base}/ballast")
    again = deploy(project, node, "dev", project.dev_builds[-1])
    assert again.code == 0, again.stderr


def test_a_node_rebooted_mid_deploy_comes_back_on_its_last_good_current(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.1.0").code == 0
    good = project.shas["0.1.0"]
    running = deploy_in_background(
        project, node, "staging", "0.2.0", tmp_path / "err", HELIONYX_PAUSE_AFTER="upload"
    )
    running.wait_for("paused after upload")
    rebooted = harness("reboot")
    assert rebooted.returncode == 0, rebooted.stderr
    assert wait_until(lambda: healthy_commit(node, "staging"), 60, "staging after the boot") == good
    assert node.current("staging") == good

    # The paused deploy finds its connection gone before its next step: it connects again,
    # finds its upload and its lock where it left them, and finishes.
    assert running.resume() == 0, running.stderr()
    assert healthy_commit(node, "staging") == project.shas["0.2.0"]
    code, status = status_json(project, node, "staging")
    assert code == 0 and status["lock"] is None and status["leftovers"] == []


def test_reboots_at_random_instants_of_a_failing_deploy_leave_the_env_on_its_last_good_release(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0
    good = project.shas["0.1.0"]
    never = never_ready_build(project)
    seed = random.randrange(1 << 30)
    instants = random.Random(seed)
    for attempt in range(2):
        running = deploy_in_background(project, node, "dev", never, tmp_path / f"err{attempt}")
        wait_until(
            lambda: (
                "yes" in node.ssh(f"test -e {BASE}/activation.json && echo yes", check=False)
                or None
            ),
            120,
            "the go-live to begin",
        )
        # A random instant of the switch, restart and health gate (20 s on dev).
        delay = instants.uniform(0.2, 6.0)
        time.sleep(delay)
        rebooted = harness("reboot")
        assert rebooted.returncode == 0, rebooted.stderr
        context = f"seed {seed}, reboot {attempt} {delay:.1f} s into the go-live"

        serving = wait_until(lambda: healthy_commit(node, "dev"), 60, "dev after the boot")
        assert serving == good, context
        assert node.current("dev") == good, context
        assert running.process.wait(timeout=180) != 0, context
        # Cut off (one line), or told by the host that the release was killed before it got
        # ready (its reason and the journal's last lines).
        assert running.stderr().startswith("error: "), (context, running.stderr())
        records = [json.loads(li) for li in node.ssh(f"cat {BASE}/deploy-log.jsonl").splitlines()]
        finishes = [r for r in records if r.get("step") == "finish" and r.get("sha") == never]
        assert len(finishes) == attempt + 1, (context, finishes)
        finish = finishes[-1]
        assert finish["outcome"] in ("rolled_back", "failed"), (context, finish)
        assert node.ssh(f"ls -A {BASE}").split().count("activation.json") == 0, context
        # Either the host undid it at boot, or the gate had already failed and rolled back.
        if "host restarted" in finish.get("reason", ""):
            assert finish["outcome"] == "rolled_back", (context, finish)

    again = deploy(project, node, "dev", project.dev_build("after the reboots"))
    assert again.code == 0, again.stderr


def test_a_dropped_connection_is_survived_between_steps_and_mid_upload_and_fails_a_step_cleanly(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0

    # Between two steps: the host has seen nothing of the next one, so the deploy connects again.
    running = deploy_in_background(
        project, node, "dev", "0.2.0", tmp_path / "between", HELIONYX_PAUSE_AFTER="prepare"
    )
    running.wait_for("paused after prepare")
    assert node.cut_ssh() >= 1
    assert running.resume() == 0, running.stderr()
    assert healthy_commit(node, "dev") == project.shas["0.2.0"]

    # In the middle of the upload (the link slowed so the cut lands mid-transfer): the upload is
    # sent again, whole, on a new connection.
    target = project.dev_build("slow upload")
    running = deploy_in_background(
        project, node, "dev", target, tmp_path / "mid", HELIONYX_PAUSE_AFTER="prepare"
    )
    running.wait_for("paused after prepare")
    veth: str = node.node.veth  # the host's end of the node's veth pair
    shape = ["tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", "128kbit"]
    subprocess.run([*shape, "burst", "4kb", "latency", "5s"], check=True)
    try:
        running.process.send_signal(signal.SIGUSR1)
        # Watched and cut from this machine: the slowed link is busy with the upload.
        upload = node.path(f"{RELEASES.format(env='dev')}/.{target}.upload")
        wait_until(
            lambda: (upload.exists() and upload.stat().st_size > 0) or None,
            60,
            "the upload to be under way",
        )
        assert node.cut_ssh() >= 1
        code = running.process.wait(timeout=180)
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], check=False)
    assert code == 0, running.stderr()
    assert healthy_commit(node, "dev") == target

    # During a step the host was carrying out: that step's answer is lost, so the deploy stops
    # with one line naming it; the next one finds the work done and finishes.
    relocked = relocked_build(project, "cut mid-build")
    running = deploy_in_background(project, node, "dev", relocked, tmp_path / "step")
    partial = node.path(f"{RELEASES.format(env='dev')}/.{relocked}.partial/venv")
    wait_until(lambda: partial.exists() or None, 60, "the venv build to start")
    assert node.cut_ssh() >= 1
    assert running.process.wait(timeout=120) != 0
    last = running.stderr().strip().splitlines()[-1]
    assert last.startswith("error: ") and "build" in last, last
    assert node.current("dev") == target, "current was never touched"
    code, status = status_json(project, node, "dev")
    assert code == 0 and status["lock"] is None, "the lock went back over a new connection"
    again = deploy(project, node, "dev", relocked)
    assert again.code == 0, again.stderr
    assert healthy_commit(node, "dev") == relocked


def test_a_service_killed_under_ingest_load_loses_no_acknowledged_event(
    project: Project, node: NodeHandle
) -> None:
    # Listening on the node's address too, so the writers here reach it.
    listen = {**node.env, "DEPLOY_LISTEN_ADDRESS": "0.0.0.0"}
    assert (
        project.cli(
            "setup-host", "--env", "dev", "--env-file", str(project.env_file("dev")), env=listen
        ).code
        == 0
    )
    assert (
        project.cli(
            "deploy", "--env", "dev", "--version", "0.1.0", "--store", project.store, env=listen
        ).code
        == 0
    )
    with IngestLoad(ingest_url(node, "dev")) as load:
        load.wait_for_more(50)
        pid = node.ssh("systemctl show -p MainPID --value helionyx-dev").strip()
        node.ssh("systemctl kill --signal=SIGKILL helionyx-dev.service")
        wait_until(
            lambda: (
                node.ssh("systemctl show -p MainPID --value helionyx-dev").strip() not in ("0", pid)
                or None
            ),
            30,
            "systemd to start the service again",
        )
        load.wait_for_more(50)
    acknowledged = load.acknowledged
    restarts = node.ssh("systemctl show -p NRestarts --value helionyx-dev").strip()
    assert int(restarts) >= 1, "systemd restarted the killed service"

    stored = event_ids(node, "dev")
    assert set(acknowledged) <= set(stored), "every acknowledged event is in the log"
    assert len(stored) == len(set(stored)), "no event was written twice"

    # A write torn by a crash (half a line at the end) is quarantined at the next start.
    node.ssh(
        "systemctl stop helionyx-dev.service && "
        "cd /var/lib/helionyx/dev/events && f=$(ls events-*.jsonl | tail -1) && "
        "printf '%s' '{\"event_id\": \"torn-by-a-crash' >> $f && "
        "systemctl start helionyx-dev.service"
    )
    assert wait_until(lambda: healthy_commit(node, "dev"), 30, "the restart") is not None
    torn = node.ssh("cat /var/lib/helionyx/dev/events/*.torn-* 2>/dev/null || true")
    assert "torn-by-a-crash" in torn
    assert event_ids(node, "dev") == stored, "the torn line left the log, nothing else did"


def test_releases_are_ordered_by_the_deploy_log_when_the_clock_went_back(
    project: Project, node: NodeHandle
) -> None:
    # The node's clock is this machine's (a container shares the kernel's clock), so instead of
    # moving it the test makes the newest release older in every timestamp the disk holds.
    setup_env(project, node, "dev")
    for version in ("0.1.0", "0.2.0"):
        assert deploy(project, node, "dev", version).code == 0
    newest = project.shas["0.2.0"]
    node.ssh(f"touch -h -d '2001-01-01' {RELEASES.format(env='dev')}/{newest}")
    code, status = status_json(project, node, "dev")
    assert code == 0
    assert [(r["version"], r["state"]) for r in status["releases"]] == [
        ("0.2.0", "current"),
        ("0.1.0", "previous"),
    ]
    rolled = project.cli("rollback", "--env", "dev", env=node.env)
    assert rolled.code == 0, rolled.stderr
    code, status = status_json(project, node, "dev")
    assert [r["version"] for r in status["releases"]] == ["0.1.0", "0.2.0"]

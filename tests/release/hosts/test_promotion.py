"""Promotion and the staging gate on the real test node (issue 16)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helionyx.telegram.botapi_standin import serving as botapi_serving
from tests.release.conftest import Result
from tests.release.deploykit import (
    TOKEN,
    NodeHandle,
    Project,
    deploy,
    deploy_in_background,
    setup_env,
    wait_until,
)

pytestmark = pytest.mark.node

SOAK = 4


@contextmanager
def behind_staging(project: Project, soak: float) -> Iterator[Project]:
    """The shared project with live behind the staging gate, for one test only."""
    live = project.repo / "deployment" / "environments" / "live.toml"
    before = live.read_text()
    live.write_text(before + f'requires = "staging"\nsoak = {soak}\n')
    try:
        yield project
    finally:
        live.write_text(before)


@pytest.fixture
def gated(project: Project) -> Iterator[Project]:
    """Live behind staging with a soak of SOAK seconds."""
    with behind_staging(project, SOAK) as gated:
        yield gated


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


def test_status_without_env_shows_every_env_and_how_far_live_is_behind(
    project: Project, node: NodeHandle
) -> None:
    with behind_staging(project, 0):
        for env in ("staging", "live"):
            setup_env(project, node, env)
        assert deploy(project, node, "staging", "0.1.0").code == 0
        assert deploy(project, node, "live", "0.1.0").code == 0
        assert deploy(project, node, "staging", "0.2.0").code == 0
        table = project.cli("status", env=node.env)
        rows = json.loads(project.cli("status", "--format", "json", env=node.env).stdout)
    assert table.code == 1, "dev has nothing deployed: not all healthy"
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert "0.2.0" in lines["staging"] and "healthy" in lines["staging"]
    assert lines["live"].endswith("2 commits behind staging"), table.stdout
    assert "UNHEALTHY" in lines["dev"]
    assert [r["env"] for r in rows] == ["dev", "live", "staging"]
    live = next(r for r in rows if r["env"] == "live")
    assert (live["status"]["version"], live["behind"]) == ("0.1.0", "2 commits behind staging")


CRASH_LATER = (
    "src/helionyx/server.py",
    "        telegram = Supervisor(settings)\n",
    "        __import__('threading').Timer(3.0, __import__('os')._exit, (1,)).start()\n"
    "        telegram = Supervisor(settings)\n",
)


def test_a_release_that_crashes_after_its_health_gate_is_rolled_back_by_the_watch(
    project: Project, node: NodeHandle
) -> None:
    tomls = project.repo / "deployment" / "environments"
    staging, live = tomls / "staging.toml", tomls / "live.toml"
    before, live_before = staging.read_text(), live.read_text()
    # Dev builds allowed for this test, so that what stops one on live is the gate alone.
    dev_builds = ("allow_dev_builds = false", "allow_dev_builds = true")
    staging.write_text(before.replace(*dev_builds) + "watch = 8\n")
    live.write_text(live_before.replace(*dev_builds))
    try:
        with behind_staging(project, 0):
            for env in ("staging", "live"):
                setup_env(project, node, env)
            assert deploy(project, node, "staging", "0.1.0").code == 0
            project.commit("feat: crash later", "Crashes 3 s after it starts.", CRASH_LATER)
            crashing = project.dev_build("crashes after its health gate")
            old, new = CRASH_LATER[2], CRASH_LATER[1]
            project.commit("fix: no crash", "No crash.", (CRASH_LATER[0], old, new))
            done = deploy(project, node, "staging", crashing)
            onward = deploy(project, node, "live", crashing)
    finally:
        staging.write_text(before)
        live.write_text(live_before)
    assert done.code == 1
    # The unit going away or /health/ready no longer answering, whichever the watch sees first.
    assert "during the 8 s watch: " in done.stderr and "rolled back to" in done.stderr
    assert node.current("staging") == project.shas["0.1.0"]
    code, health = node.http("staging", "/health")
    assert code == 200 and health["version"] == "0.1.0"
    log = "/opt/helionyx/staging/deploy-log.jsonl"
    finish = json.loads(node.ssh(f"grep '\"finish\"' {log} | tail -1"))
    assert (finish["sha"], finish["outcome"]) == (crashing, "rolled_back")
    # What the watch rolled back never reaches live.
    assert onward.code == 2
    assert f"live takes only what staging verified: {crashing[:12]} failed on staging" in (
        onward.stderr
    )
    assert node.current("live") != crashing


def test_ctrl_c_during_the_watch_ends_it_and_leaves_the_release_in_place(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    dev = project.repo / "deployment" / "environments" / "dev.toml"
    before = dev.read_text()
    dev.write_text(before.replace("watch = 0", "watch = 120"))
    try:
        setup_env(project, node, "dev")
        dev.write_text(before)
        assert deploy(project, node, "dev", "0.1.0").code == 0
        dev.write_text(before.replace("watch = 0", "watch = 120"))
        started = time.monotonic()
        running = deploy_in_background(project, node, "dev", "0.2.0", tmp_path / "deploy.log")
        # The countdown shows: the new release passed its gate and go live is in its watch.
        wait_until(
            lambda: "watch: 120 s left of 120 s" in running.stderr() or None, 120, "the watch"
        )
        assert node.current("dev") == project.shas["0.2.0"]
        running.interrupt()
        code = running.process.wait(timeout=60)
    finally:
        dev.write_text(before)
    assert code == 130, running.stderr()
    assert time.monotonic() - started < 100, "ended long before the 120 s watch"
    assert node.current("dev") == project.shas["0.2.0"]
    finish = json.loads(node.ssh("grep '\"finish\"' /opt/helionyx/dev/deploy-log.jsonl | tail -1"))
    assert finish["outcome"] == "succeeded"
    assert finish["reason"].startswith("watch cut short by the operator after")
    assert ".lock" not in node.ssh("ls -a /opt/helionyx/dev").split(), "the lock was given back"


NOTIFY_TOKEN = "4242:node-notify-token-abcdef"
CHATS = {"staging": -1002, "live": -1003}


def strip_seconds(text: str) -> str:
    """A message without its duration, which differs run to run."""
    return re.sub(r", [\d.]+ s$", "", text)


def test_every_operation_is_announced_once_and_no_message_carries_a_secret(
    project: Project, node: NodeHandle
) -> None:
    tomls = {e: project.repo / "deployment" / "environments" / f"{e}.toml" for e in CHATS}
    before = {e: path.read_text() for e, path in tomls.items()}
    shas = project.shas
    for env, path in tomls.items():
        setup_env(project, node, env)
        path.write_text(before[env] + f'notify = "telegram:{CHATS[env]}"\n')
    try:
        with botapi_serving(NOTIFY_TOKEN) as telegram:
            told = {
                **node.env,
                "HELIONYX_NOTIFY_BOT_TOKEN": NOTIFY_TOKEN,
                "TELEGRAM_API_URL": telegram.base_url,
                "DEPLOY_OPERATOR": "ops@laptop",
            }
            assert deploy(project, node, "staging", "0.1.0", **told).code == 0
            promoting = ["promote", "--from", "staging", "--to", "live", "--store", project.store]
            assert project.cli(*promoting, env=told).code == 0
            assert deploy(project, node, "staging", "0.2.0", **told).code == 0
            back = project.cli("rollback", "--env", "staging", env=told)
            assert back.code == 0, back.stderr
            assert deploy(project, node, "staging", "0.2.1", **told).code == 1
            sent = {env: telegram.replies_to(chat) for env, chat in CHATS.items()}
            messages = list(telegram.sent)
    finally:
        for env, path in tomls.items():
            path.write_text(before[env])
    by = "by ops@laptop"
    assert [strip_seconds(t) for t in sent["live"]] == [
        f"helionyx live: promotion from staging of 0.1.0 ({shas['0.1.0'][:12]}) succeeded, {by}"
    ]
    staging = [strip_seconds(t) for t in sent["staging"]]
    assert staging[:3] == [
        f"helionyx staging: deploy of 0.1.0 ({shas['0.1.0'][:12]}) succeeded, {by}",
        f"helionyx staging: deploy of 0.2.0 ({shas['0.2.0'][:12]}) succeeded, {by}",
        f"helionyx staging: rollback to 0.1.0 ({shas['0.1.0'][:12]}) succeeded, {by}",
    ]
    assert len(staging) == 4
    assert staging[3].startswith(
        f"helionyx staging: deploy of 0.2.1 ({shas['0.2.1'][:12]}) rolled back: "
    )
    secrets = [NOTIFY_TOKEN.split(":")[1], TOKEN, Path(node.env["DEPLOY_SSH_KEY"]).read_text()]
    for text in [*sent["staging"], *sent["live"], *(json.dumps(m) for m in messages)]:
        assert not [s for s in secrets if s.strip() in text], text

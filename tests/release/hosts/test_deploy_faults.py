"""Deploys killed at the worst moments and bad input: the host stays truthful and repairable."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("moment", ["upload", "build", "go live"])
def test_a_deploy_killed_mid_way_is_repaired_by_the_next_deploy(
    project: Project, node: NodeHandle, tmp_path: Path, moment: str
) -> None:
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.1.0").code == 0
    target = project.shas["0.2.0"]
    if moment == "build":
        # Kill while the venv is being built on the node.
        running = deploy_in_background(project, node, "staging", "0.2.0", tmp_path / "err")
        wait_until(
            lambda: (
                node.ssh(
                    f"test -d /opt/helionyx/staging/releases/.{target}.partial/venv && echo y",
                    check=False,
                ).strip()
                == "y"
                or None
            ),
            60,
            "the venv build to start",
        )
    else:
        running = deploy_in_background(
            project, node, "staging", "0.2.0", tmp_path / "err", HELIONYX_PAUSE_AFTER=moment
        )
        running.wait_for(f"paused after {moment}")
    running.kill()

    code, status = status_json(project, node, "staging")
    current = node.current("staging")
    assert current in (project.shas["0.1.0"], target)
    assert (
        node.ssh(
            f"test -f /opt/helionyx/staging/releases/{current}/manifest.json && echo ok"
        ).strip()
        == "ok"
    )
    # Killed after going live, the host had finished (and recorded) the deploy itself.
    expected = target if moment == "go live" else project.shas["0.1.0"]
    assert status["sha"] == expected
    assert status["healthy"] is True and code == 0
    assert status["lock"] is not None, "the killed deploy's lock is reported"
    assert "stale: that process is gone" in status["lock"], "and marked as the next run sees it"
    if moment == "upload":
        assert status["leftovers"] == [f".{target}.upload"], "the half-done upload is reported"

    again = deploy(project, node, "staging", "0.2.0")
    assert again.code == 0, again.stderr
    assert "removed a stale lock" in again.stdout
    assert node.http("staging", "/health")[1]["commit"] == target
    assert node.ssh("ls -A /opt/helionyx/staging/releases | grep '^\\.' || true").strip() == ""
    code, status = status_json(project, node, "staging")
    assert code == 0 and status["healthy"] and status["lock"] is None


def test_a_broken_release_is_rolled_back_by_the_host_when_the_operator_dies_after_the_flip(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.2.0").code == 0
    good, broken = project.shas["0.2.0"], project.shas["0.2.1"]
    running = deploy_in_background(project, node, "staging", "0.2.1", tmp_path / "err")
    current = node.path("/opt/helionyx/staging/current")
    wait_until(lambda: current.readlink().name == broken or None, 180, "the flip to the broken one")
    running.kill()  # SIGKILL right after the flip: nobody is left to drive a rollback

    def host_finish() -> dict[str, object] | None:
        lines = node.path("/opt/helionyx/staging/deploy-log.jsonl").read_text().splitlines()
        finishes = [e for e in map(json.loads, lines) if e.get("step") == "finish"]
        last = finishes[-1] if finishes else None
        return last if last is not None and last["sha"] == broken else None

    finish = wait_until(host_finish, 20 + 10, "the host's own finish record (health timeout 20 s)")
    assert finish["outcome"] == "rolled_back", finish
    assert node.current("staging") == good
    code, health = node.http("staging", "/health/ready")
    assert code == 200 and health["commit"] == good
    code, status = status_json(project, node, "staging")
    assert code == 0 and status["healthy"] and status["sha"] == good
    listed = project.cli("releases", "--env", "staging", "--format", "json", env=node.env)
    assert {row["version"]: row["state"] for row in json.loads(listed.stdout)}["0.2.1"] == "failed"


def tamper(project: Project, tmp_path: Path) -> str:
    store = tmp_path / "tampered"
    shutil.copytree(project.repo / "dist" / "releases" / "0.2.0", store / "0.2.0")
    wheel = next((store / "0.2.0" / "wheelhouse").glob("fastapi-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    return f"dir:{store}"


def new_key(path: Path) -> Path:
    """A real ed25519 key pair that neither the node nor its operator knows; the private half."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def another_host_key(tmp_path: Path) -> str:
    """A public key that is not the node's: what a swapped host would show."""
    kind, key, *_ = new_key(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    return f"{kind} {key}"


def test_bad_input_says_one_line_and_leaves_the_host_unchanged(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    setup_env(project, node, "live")
    assert deploy(project, node, "staging", "0.1.0").code == 0
    dev_sha = project.dev_build("never-on-staging")
    wrong_keys = tmp_path / "known_hosts"
    wrong_keys.write_text(f"{node.env['DEPLOY_HOST']} {another_host_key(tmp_path)}\n")
    empty_keys = tmp_path / "empty_known_hosts"
    empty_keys.write_text("")
    open_key = tmp_path / "open_key"
    shutil.copyfile(node.env["DEPLOY_SSH_KEY"], open_key)
    open_key.chmod(0o644)
    holder = deploy_in_background(
        project, node, "live", "0.1.0", tmp_path / "holder", HELIONYX_PAUSE_AFTER="lock"
    )
    holder.wait_for("paused after lock")
    before = node.listing()
    cases = [
        (["deploy", "--env", "prod", "--version", "0.1.0"], {}, "unknown environment 'prod'"),
        (["deploy", "--env", "staging", "--version", "9.9.9"], {}, "unknown version '9.9.9'"),
        (
            [
                "deploy",
                "--env",
                "staging",
                "--version",
                "0.2.0",
                "--store",
                tamper(project, tmp_path),
            ],
            {},
            "checksum mismatch for wheelhouse/fastapi-",
        ),
        (
            ["deploy", "--env", "staging", "--version", "0.2.0"],
            {"DEPLOY_HOST": "127.0.0.1", "DEPLOY_SSH_PORT": "1"},
            "cannot reach root@127.0.0.1:1",
        ),
        (
            ["deploy", "--env", "staging", "--version", "0.2.0"],
            {"DEPLOY_KNOWN_HOSTS": str(wrong_keys)},
            "does not match",
        ),
        (
            ["deploy", "--env", "staging", "--version", "0.2.0"],
            {"DEPLOY_KNOWN_HOSTS": str(empty_keys)},
            "is not in",
        ),
        (
            ["rollback", "--env", "staging"],
            {"DEPLOY_SSH_KEY": str(open_key)},
            f"the SSH key {open_key} is readable by others",
        ),
        (
            ["status", "--env", "staging"],
            {"DEPLOY_SSH_KEY": str(tmp_path / "no_such_key")},
            "no_such_key does not exist",
        ),
        (
            ["deploy", "--env", "staging", "--version", "0.2.0"],
            {"DEPLOY_SSH_KEY": str(new_key(tmp_path / "stranger"))},
            "refused the SSH key",
        ),
        (["deploy", "--env", "live", "--version", "0.2.0"], {}, "live is locked by"),
        (
            ["deploy", "--env", "staging", "--version", dev_sha[:12]],
            {},
            "unpublished dev build; staging takes tagged releases only",
        ),
        (["rollback", "--env", "staging"], {}, "no previous good release"),
        (["rollback", "--env", "staging", "--to", "v7.7.7"], {}, "no single release 'v7.7.7'"),
    ]
    try:
        for given, extra, expected in cases:
            store = ["--store", project.store] if given[0] == "deploy" else []
            args = given if "--store" in given else [*given, *store]
            result = project.cli(*args, env={**node.env, **extra})
            lines = result.stderr.strip().splitlines()
            assert result.code != 0, (args, result.stdout)
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
            assert expected in lines[0], (args, lines[0])
            assert "Traceback" not in result.stderr
            if expected.startswith("unknown version"):
                assert result.stdout == "", "resolved first, announced after"
            assert node.listing() == before, f"{args} changed the host"
    finally:
        holder.kill()


def test_ctrl_c_during_the_build_lets_it_finish_then_unlocks_and_records_it(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    setup_env(project, node, "staging")
    assert deploy(project, node, "staging", "0.1.0").code == 0
    target = project.shas["0.2.0"]
    partial = f"/opt/helionyx/staging/releases/.{target}.partial/venv"
    running = deploy_in_background(project, node, "staging", "0.2.0", tmp_path / "err")
    wait_until(
        lambda: node.ssh(f"test -d {partial} && echo y", check=False).strip() == "y" or None,
        60,
        "the venv build to start",
    )
    running.interrupt()

    assert running.process.wait(timeout=120) == 130
    assert running.stderr().strip().splitlines()[-1] == (
        "interrupted; make status ENV=staging shows where it stands"
    )
    assert "Traceback" not in running.stderr()
    assert "letting the step under way finish" in (tmp_path / "err.out").read_text()
    code, status = status_json(project, node, "staging")
    assert code == 0 and status["healthy"] and status["sha"] == project.shas["0.1.0"]
    assert status["lock"] is None, "the interrupted deploy unlocked on its way out"
    last = json.loads(node.ssh("tail -n 1 /opt/helionyx/staging/deploy-log.jsonl"))
    assert last["outcome"] == "failed" and "interrupted" in last["reason"]
    assert last["sha"] == target

    again = deploy(project, node, "staging", "0.2.0")
    assert again.code == 0, again.stderr
    assert "stale lock" not in again.stdout
    assert f"release {target[:12]} is already on the host; reusing it" in again.stdout
    assert node.http("staging", "/health")[1]["commit"] == target

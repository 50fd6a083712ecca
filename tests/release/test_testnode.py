"""The test-node harness itself: idempotent up, eval-able env, a real systemd over real SSH."""

from __future__ import annotations

import subprocess

import pytest

from tests.release.conftest import REPO
from tests.release.deploykit import NodeHandle, harness

pytestmark = pytest.mark.node


def test_up_is_idempotent_and_env_exports_the_settings(node: NodeHandle) -> None:
    again = harness("up")
    assert again.returncode == 0
    assert "already up" in again.stderr
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "testnode-env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    evaluated = subprocess.run(
        [
            "bash",
            "-c",
            # A child process must see them: the make and python an operator runs next.
            f'eval "{printed}"; sh -c \'echo "$DEPLOY_HOST $DEPLOY_SSH_KEY $DEPLOY_KNOWN_HOSTS"\'',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert evaluated == [
        node.env["DEPLOY_HOST"],
        node.env["DEPLOY_SSH_KEY"],
        node.env["DEPLOY_KNOWN_HOSTS"],
    ]
    assert node.ssh("systemctl is-system-running").strip() in ("running", "degraded")
    assert node.ssh("cat /proc/1/comm").strip() == "systemd"
    assert node.ssh("ps -o comm= -C sshd | head -1").strip() == "sshd"

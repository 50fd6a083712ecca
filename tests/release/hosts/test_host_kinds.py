"""Hosts of more than one kind (issue 21): Debian 13's Python 3.13 beside Debian 12's 3.11, a
host without python3, and a distribution upgrade under deployed releases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.release.deploykit import (
    NodeHandle,
    Project,
    boot_fresh,
    deploy,
    harness,
    setup_env,
    wait_until,
)

pytestmark = pytest.mark.node

#: The trixie node's own name and subnet, beside node1's.
TRIXIE = ("trixie", 5)


@pytest.fixture
def trixie() -> Iterator[NodeHandle]:
    """A freshly booted Debian 13 node (Python 3.13, systemd 257, OpenSSH 10)."""
    name, index = TRIXIE
    booted = boot_fresh(name, index, "trixie")
    yield booted
    harness("--name", name, "--index", str(index), "down")


def _serving(node: NodeHandle, env: str) -> Any:
    code, body = node.http(env, "/health/ready")
    return body["commit"] if code == 200 else None


def _release_python(node: NodeHandle, env: str, sha: str) -> str:
    venv = f"/opt/helionyx/{env}/releases/{sha}/venv"
    return node.ssh(f"{venv}/bin/python -c 'import sys; print(sys.version_info[:2])'").strip()


def test_a_debian_13_host_takes_deploy_restart_rollback_and_promote(
    project: Project, trixie: NodeHandle
) -> None:
    node, shas = trixie, project.shas
    assert node.ssh("python3 -c 'import sys; print(sys.version_info[:2])'").strip() == "(3, 13)"
    for env in ("dev", "staging"):
        setup_env(project, node, env)

    first = deploy(project, node, "dev", "0.1.0")
    assert first.code == 0, first.stderr
    assert "host: CPython 3.13." in first.stdout and "on x86_64 with glibc 2.41" in first.stdout
    assert "artifact: CPython 3.11, 3.12, 3.13 on x86_64, aarch64, glibc 2.31+" in first.stdout
    assert "wheel(s) for other hosts left out" in first.stdout
    assert _serving(node, "dev") == shas["0.1.0"]
    assert _release_python(node, "dev", shas["0.1.0"]) == "(3, 13)"
    held = node.ssh(f"ls /opt/helionyx/dev/releases/{shas['0.1.0']}/wheelhouse").split()
    core = [name for name in held if name.startswith("pydantic_core-")]
    assert len(core) == 1 and "-cp313-" in core[0] and "x86_64" in core[0], held
    tools = node.ssh(f"ls /opt/helionyx/dev/releases/{shas['0.1.0']}/tools").split()
    assert [t for t in tools if t.endswith(".whl")] == [
        t for t in tools if t.endswith(".whl") and "x86_64" in t
    ]

    second = deploy(project, node, "dev", "0.2.0")
    assert second.code == 0, second.stderr
    assert "venv (dependencies linked)" in second.stdout
    restarted = project.cli("restart", "--env", "dev", env=node.env)
    assert restarted.code == 0, restarted.stderr
    assert wait_until(lambda: _serving(node, "dev"), 30, "dev ready") == shas["0.2.0"]

    broken = deploy(project, node, "dev", "0.2.1")
    assert broken.code != 0 and "rolled back" in broken.stdout + broken.stderr
    assert _serving(node, "dev") == shas["0.2.0"]

    back = project.cli("rollback", "--env", "dev", "--to", "0.1.0", env=node.env)
    assert back.code == 0, back.stderr
    assert _serving(node, "dev") == shas["0.1.0"]

    promoted = project.cli(
        "promote", "--from", "dev", "--to", "staging", "--store", project.store, env=node.env
    )
    assert promoted.code == 0, promoted.stderr
    assert _serving(node, "staging") == shas["0.1.0"]


def test_a_host_without_python3_is_refused_before_anything_changes(
    project: Project, node: NodeHandle
) -> None:
    setup_env(project, node, "dev")
    assert deploy(project, node, "dev", "0.1.0").code == 0
    node.ssh("mv /usr/bin/python3 /usr/bin/python3.hidden")
    before = node.listing()
    try:
        for args in (
            ["plan", "--env", "dev", "--version", "0.2.0", "--store", project.store],
            ["deploy", "--env", "dev", "--version", "0.2.0", "--store", project.store],
            ["setup-host", "--env", "dev", "--env-file", str(project.env_file("dev"))],
        ):
            refused = project.cli(*args, env=node.env)
            assert refused.code != 0, args
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
            assert "python3" in lines[0] and "install" in lines[0], lines[0]
            if args[0] != "setup-host":
                assert "0.2.0 offers CPython 3.11, 3.12, 3.13" in lines[0], lines[0]
            assert node.listing() == before, f"{args} changed the host"
        assert _serving(node, "dev") == project.shas["0.1.0"], "the service never noticed"
    finally:
        node.ssh("mv /usr/bin/python3.hidden /usr/bin/python3")


def test_after_a_distribution_upgrade_rollback_is_refused_and_deploy_rebuilds(
    project: Project, node: NodeHandle
) -> None:
    shas = project.shas
    setup_env(project, node, "dev")
    for version in ("0.1.0", "0.2.0"):
        assert deploy(project, node, "dev", version).code == 0
    assert _release_python(node, "dev", shas["0.2.0"]) == "(3, 11)"

    # Debian 12 -> 13 under everything the node holds: python3 is now 3.13, 3.11 is gone.
    upgraded = harness("--suite", "trixie", "reboot")
    assert upgraded.returncode == 0, upgraded.stderr
    assert node.ssh("python3 --version").startswith("Python 3.13")

    before = node.listing()
    shown = project.cli("status", "--env", "dev", env=node.env)
    assert shown.code != 0
    assert "host       CPython 3.13" in shown.stdout
    assert (
        f"NOT HEALTHY: current 0.2.0 ({shas['0.2.0'][:12]}) was built for Python 3.11, "
        "which the host no longer has (make deploy VERSION=0.2.0 rebuilds it)"
    ) in shown.stdout
    refused = project.cli("rollback", "--env", "dev", "--to", "0.1.0", env=node.env)
    assert refused.code == 2, refused.stderr
    assert "was built for Python 3.11" in refused.stderr and "python3 is now 3.13" in refused.stderr
    assert "make deploy VERSION=0.1.0" in refused.stderr
    assert node.listing() == before, "the refused rollback changed the host"

    plan = project.cli(
        "plan", "--env", "dev", "--version", "0.1.0", "--store", project.store, env=node.env
    )
    assert plan.code == 0, plan.stderr
    assert "NOT safe" in plan.stdout and "built for Python 3.11" in plan.stdout

    rebuilt = deploy(project, node, "dev", "0.2.0")
    assert rebuilt.code == 0, rebuilt.stderr
    assert "already on the host" not in rebuilt.stdout, "a release that cannot start is rebuilt"
    assert "venv (dependencies linked)" not in rebuilt.stdout
    assert _serving(node, "dev") == shas["0.2.0"]
    assert _release_python(node, "dev", shas["0.2.0"]) == "(3, 13)"

    again = deploy(project, node, "dev", "0.1.0")
    assert again.code == 0, again.stderr
    assert _serving(node, "dev") == shas["0.1.0"]
    back = project.cli("rollback", "--env", "dev", env=node.env)
    assert back.code == 0, back.stderr
    assert _serving(node, "dev") == shas["0.2.0"]

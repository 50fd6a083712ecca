"""An env of several hosts on three real nodes (issue 23): set up and deployed as a whole, all
or nothing, and judged as a whole by `make status`."""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release.conftest import Result
from tests.release.deploykit import (
    NodeHandle,
    Project,
    boot_fresh,
    deploy_args,
    deploy_in_background,
    harness,
    wait_until,
)

pytestmark = pytest.mark.node

#: node1 is the suite's own node; two more, each on its own /24.
OTHERS = (("node2", 2), ("node3", 3))
LOG = "/opt/helionyx/dev/deploy-log.jsonl"


@pytest.fixture
def trio(node: NodeHandle, project: Project, tmp_path: Path) -> Iterator[Trio]:
    """node1 and two more freshly booted nodes, dev set up on all three as one env, on 0.1.0."""
    others = [boot_fresh(name, index) for name, index in OTHERS]
    nodes = Trio([node, *others], project, tmp_path)
    setup = project.cli(
        "setup-host", "--env", "dev", "--env-file", str(project.env_file("dev")), env=nodes.env
    )
    assert setup.code == 0, setup.stderr
    assert f"dev is set up on {', '.join(nodes.ips)}" in setup.stdout
    first = nodes.deploy("0.1.0")
    assert first.code == 0, first.stdout + first.stderr
    yield nodes
    for name, index in OTHERS:
        harness("--name", name, "--index", str(index), "down")


class Trio:
    """Three nodes as one env: how the operator reaches them all, and what each one runs."""

    def __init__(self, nodes: list[NodeHandle], project: Project, tmp_path: Path) -> None:
        self.nodes, self.project = nodes, project
        self.ips = [n.env["DEPLOY_HOST"] for n in nodes]
        known = tmp_path / "known_hosts"
        known.write_text("".join(Path(n.env["DEPLOY_KNOWN_HOSTS"]).read_text() for n in nodes))
        self.env = {
            "DEPLOY_HOSTS": ",".join(self.ips),
            "DEPLOY_SSH_KEY": nodes[0].env["DEPLOY_SSH_KEY"],
            "DEPLOY_KNOWN_HOSTS": str(known),
        }

    def deploy(self, version: str) -> Result:
        return self.project.cli(*deploy_args(self.project, "dev", version), env=self.env)

    def serving(self) -> list[str | None]:
        """The commit each node's dev answers /health with (the process that serves)."""
        found = []
        for node in self.nodes:
            code, body = node.http("dev", "/health")
            found.append(body.get("commit") if code == 200 and isinstance(body, dict) else None)
        return found

    def currents(self) -> list[str | None]:
        return [n.current("dev") for n in self.nodes]

    def finishes(self) -> list[dict[str, object]]:
        """Each node's last finish record."""
        return [
            json.loads(n.ssh(f'grep \'"step": "finish"\' {LOG} | tail -1') or "{}")
            for n in self.nodes
        ]

    def settled(self) -> bool | None:
        """Whether every node's agent has settled what the killed operator left: none runs any
        more, and no activation is left under way (an agent may still be taking the request it
        got just before the kill)."""
        left = [
            n.ssh(
                "pgrep -f 'helionyx[-]agent' >/dev/null && echo running; "
                "ls /opt/helionyx/dev/activation.json 2>/dev/null || true"
            ).strip()
            for n in self.nodes
        ]
        return True if not any(left) else None


def test_a_deploy_holds_every_host_ready_beside_the_old_release_then_switches_all(
    trio: Trio, tmp_path: Path
) -> None:
    old, new = trio.project.shas["0.1.0"], trio.project.shas["0.2.0"]
    assert trio.serving() == [old] * 3
    shown = trio.project.cli("status", "--env", "dev", env=trio.env)
    assert shown.code == 0, shown.stdout + shown.stderr
    assert "env        dev on 3 hosts" in shown.stdout
    for ip in trio.ips:
        assert f"  {ip}  healthy    0.1.0 ({old[:12]})  active, pid " in shown.stdout
    assert f"verdict    healthy, 0.1.0 ({old[:12]}) on every host" in shown.stdout

    paused = deploy_in_background(
        trio.project,
        trio.nodes[0],
        "dev",
        "0.2.0",
        tmp_path / "deploy.log",
        HELIONYX_PAUSE_AFTER="ready",
        **trio.env,
    )
    paused.wait_for("paused after ready")
    # Every host has the new release ready beside the old one, and every client still gets
    # the old one: no host switched before all were ready.
    assert trio.serving() == [old] * 3
    assert trio.currents() == [new] * 3
    during = json.loads(
        trio.project.cli("status", "--env", "dev", "--format", "json", env=trio.env).stdout
    )
    for host in during["hosts"]:
        assert f"to {new[:12]} (ready, pid " in host["status"]["service"]["handing_over"]
    assert paused.resume() == 0, paused.stderr()
    assert trio.serving() == [new] * 3
    for finish in trio.finishes():
        assert (finish["outcome"], finish["sha"]) == ("succeeded", new)
    out = (tmp_path / "deploy.out").read_text()
    assert f"deployed 0.2.0 ({new[:12]}) to dev" in out
    for ip in trio.ips:
        assert f"  · {ip}: ready beside the running release in " in out


def test_a_staging_failure_on_one_host_moves_no_host(trio: Trio) -> None:
    old, new = trio.project.shas["0.1.0"], trio.project.shas["0.2.0"]
    # node2's settings are broken (older than its service, which read them when they were
    # good): the new release's smoke check there refuses them.
    trio.nodes[1].ssh(
        "sed -i 's/^LOG_LEVEL=.*/LOG_LEVEL=LOUD/' /etc/helionyx/dev.env && "
        "touch -d '-1 hour' /etc/helionyx/dev.env"
    )
    refused = trio.deploy("0.2.0")
    assert refused.code == 1
    assert refused.stderr.startswith(
        f"error: staging failed on {trio.ips[1]}: smoke check (helionyx check-config) failed: "
    )
    assert trio.currents() == [old] * 3 and trio.serving() == [old] * 3
    for finish in trio.finishes():
        assert (finish["outcome"], finish["sha"]) == ("failed", new)
        assert f"staging failed on {trio.ips[1]}" in str(finish["reason"])


def test_a_readiness_failure_on_one_host_moves_no_host(trio: Trio) -> None:
    old, new = trio.project.shas["0.1.0"], trio.project.shas["0.2.0"]
    # node2's event log cannot be read by the service user any more: the running release has
    # read it already; the new one, starting beside it, cannot, and is never ready.
    trio.nodes[1].ingest("dev", "written before the deploy")
    trio.nodes[1].ssh("chmod 000 /var/lib/helionyx/dev/events/*.jsonl")
    refused = trio.deploy("0.2.0")
    assert refused.code == 1
    assert (
        f"not ready on every host, so none switched: {trio.ips[1]}: not ready beside the "
        "running release: "
    ) in refused.stderr
    assert trio.currents() == [old] * 3 and trio.serving() == [old] * 3
    for finish in trio.finishes():
        assert (finish["outcome"], finish["sha"]) == ("failed", new)
        assert trio.ips[1] in str(finish["reason"])


def test_a_host_failing_after_the_switch_brings_every_host_back(trio: Trio) -> None:
    old, new = trio.project.shas["0.1.0"], trio.project.shas["0.2.0"]
    toml = trio.project.repo / "deployment" / "environments" / "dev.toml"
    before = toml.read_text()
    toml.write_text(before.replace("watch = 0", "watch = 8"))
    try:
        running = deploy_in_background(
            trio.project, trio.nodes[0], "dev", "0.2.0", Path(str(toml) + ".log"), **trio.env
        )
        # node3 switched and is being watched: its new process dies (systemd restarts it).
        wait_until(lambda: trio.serving()[2] == new or None, 120, "node3 on the new release")
        trio.nodes[2].ssh("systemctl kill --kill-whom=main --signal=KILL helionyx-dev.service")
        code = running.process.wait(timeout=180)
    finally:
        toml.write_text(before)
    assert code == 1, running.stderr()
    assert f"{trio.ips[2]}: " in running.stderr() and "every host went back" in running.stderr()
    assert trio.currents() == [old] * 3 and trio.serving() == [old] * 3
    for finish in trio.finishes():
        assert (finish["outcome"], finish["sha"]) == ("rolled_back", new)


def test_an_unreachable_host_is_named_and_nothing_changes(trio: Trio) -> None:
    old = trio.project.shas["0.1.0"]
    listings = [n.listing() for n in trio.nodes[:2]]
    harness("--name", "node3", "--index", "3", "down")
    refused = trio.deploy("0.2.0")
    assert refused.code == 1
    assert (
        refused.stderr.strip().splitlines()[0].startswith(f"error: plan failed on {trio.ips[2]}: ")
    )
    assert [n.listing() for n in trio.nodes[:2]] == listings
    gone = trio.project.cli("status", "--env", "dev", env=trio.env)
    assert gone.code == 1
    assert f"  {trio.ips[0]}  healthy    0.1.0 ({old[:12]})" in gone.stdout
    assert f"  {trio.ips[2]}  unreachable  " in gone.stdout
    assert f"verdict    NOT HEALTHY: {trio.ips[2]} could not be read: " in gone.stdout


def test_sigkills_of_the_operator_at_random_instants_leave_every_host_on_one_release(
    trio: Trio, tmp_path: Path
) -> None:
    shas = trio.project.shas
    chance = random.Random(23)
    for attempt in range(4):
        version = "0.2.0" if attempt % 2 == 0 else "0.1.0"
        running = deploy_in_background(
            trio.project,
            trio.nodes[0],
            "dev",
            version,
            tmp_path / f"kill{attempt}.log",
            **trio.env,
        )
        out = tmp_path / f"kill{attempt}.out"
        wait_until(lambda out=out: "  lock " in out.read_text() or None, 60, "the locks")
        delay = chance.uniform(0.0, 6.0)
        try:
            running.process.wait(timeout=delay)
        except Exception:
            running.process.send_signal(signal.SIGKILL)
            running.process.wait(timeout=30)
        wait_until(trio.settled, 120, "every host's agent to settle")
        serving = trio.serving()
        assert len(set(serving)) == 1 and serving[0] in (shas["0.1.0"], shas["0.2.0"]), (
            attempt,
            delay,
            serving,
        )
        assert trio.currents() == serving
    # And the env deploys again, breaking the killed operator's locks.
    again = trio.deploy("0.2.0")
    assert again.code == 0, again.stderr
    assert trio.serving() == [shas["0.2.0"]] * 3

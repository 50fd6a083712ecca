"""An env of several hosts on three real nodes (issue 23): `make status` and `make releases`
read every host at once and judge the env as a whole; the commands that change hosts refuse
such an env in one line, changing nothing, until they act on all hosts together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release.deploykit import NodeHandle, Project, boot_fresh, deploy, harness, setup_env

pytestmark = pytest.mark.node

#: node1 is the suite's own node; two more, each on its own /24.
OTHERS = (("node2", 2), ("node3", 3))


@pytest.fixture
def trio(node: NodeHandle) -> Iterator[list[NodeHandle]]:
    """node1 and two more freshly booted nodes."""
    others = [boot_fresh(name, index) for name, index in OTHERS]
    yield [node, *others]
    for name, index in OTHERS:
        harness("--name", name, "--index", str(index), "down")


def whole_env(nodes: list[NodeHandle], tmp_path: Path) -> dict[str, str]:
    """The operator's environment for dev on all the nodes: DEPLOY_HOSTS and every host key."""
    known = tmp_path / "known_hosts"
    known.write_text("".join(Path(n.env["DEPLOY_KNOWN_HOSTS"]).read_text() for n in nodes))
    return {
        "DEPLOY_HOSTS": ",".join(n.env["DEPLOY_HOST"] for n in nodes),
        "DEPLOY_SSH_KEY": nodes[0].env["DEPLOY_SSH_KEY"],
        "DEPLOY_KNOWN_HOSTS": str(known),
    }


def test_status_judges_every_host_and_changing_commands_refuse_the_whole_env(
    project: Project, trio: list[NodeHandle], tmp_path: Path
) -> None:
    first, second = project.shas["0.1.0"], project.shas["0.2.0"]
    ips = [n.env["DEPLOY_HOST"] for n in trio]
    for each in trio:
        setup_env(project, each, "dev")
        assert deploy(project, each, "dev", "0.1.0").code == 0
    everywhere = whole_env(trio, tmp_path)

    shown = project.cli("status", "--env", "dev", env=everywhere)
    assert shown.code == 0, shown.stdout + shown.stderr
    assert "env        dev on 3 hosts" in shown.stdout
    for ip in ips:
        assert f"  {ip}  healthy    0.1.0 ({first[:12]})  active, pid " in shown.stdout
    assert f"verdict    healthy, 0.1.0 ({first[:12]}) on every host" in shown.stdout

    # One host moved on by hand: the env is not healthy, and that host is named.
    assert deploy(project, trio[1], "dev", "0.2.0").code == 0
    split = project.cli("status", "--env", "dev", "--format", "json", env=everywhere)
    assert split.code == 1
    report = json.loads(split.stdout)
    assert report["healthy"] is False and report["sha"] is None
    assert report["problem"] == (
        f"{ips[1]} runs 0.2.0 ({second[:12]}), not 0.1.0 ({first[:12]}) like the others"
    )
    assert [h["status"]["sha"] for h in report["hosts"]] == [first, second, first]
    listed = project.cli("releases", "--env", "dev", env=everywhere)
    assert listed.code == 0
    assert listed.stdout.count(f"* {first[:12]}") == 2 and f"* {second[:12]}" in listed.stdout

    # A deploy to the whole env is refused before anything is dialled: no host changes.
    before = [n.listing() for n in trio]
    refused = project.cli(*["deploy", "--env", "dev", "--version", "0.2.0"], env=everywhere)
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: deploy works on an env of one host; dev has 3 ({', '.join(ips)}) (env dev); "
        "make status and make releases read every host; for the rest, give each host an env "
        "file of its own for now"
    ]
    assert [n.listing() for n in trio] == before

    # A host that is down is named; the others are still read and shown.
    harness("--name", "node3", "--index", "3", "down")
    gone = project.cli("status", "--env", "dev", env=everywhere)
    assert gone.code == 1
    assert f"  {ips[0]}  healthy    0.1.0" in gone.stdout
    assert f"  {ips[2]}  unreachable  " in gone.stdout
    assert f"verdict    NOT HEALTHY: {ips[2]} could not be read: " in gone.stdout

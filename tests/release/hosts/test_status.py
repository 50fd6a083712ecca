"""The verdict on an env of several hosts: healthy only if every host is, on one release; a
host that differs, is unhealthy or cannot be read is named."""

from __future__ import annotations

from dataclasses import replace

from release.errors import ConnectionFailed
from release.hosts.fleet import Answer
from release.hosts.status import Status, verdict

NEW, OLD = "a" * 40, "b" * 40


def healthy(host: str, sha: str = NEW, version: str = "0.2.0") -> Answer[Status]:
    status = Status(
        env="live",
        host=host,
        unit="helionyx-live.service",
        version=version,
        sha=sha,
        deployed_at=None,
        deployed_by=None,
        deployed_from=None,
        healthy=True,
        problem=None,
        service={"state": "active", "pid": 42},
        health={},
        releases=[],
        lock=None,
        leftovers=[],
    )
    return Answer(host, value=status)


def test_every_host_healthy_on_one_release_is_a_healthy_env() -> None:
    whole = verdict("live", [healthy(f"node{n}") for n in range(1, 4)])
    assert (whole.healthy, whole.problem) == (True, None)
    assert (whole.version, whole.sha) == ("0.2.0", NEW)
    assert [row["host"] for row in whole.to_dict()["hosts"]] == ["node1", "node2", "node3"]


def test_a_host_on_another_release_is_named() -> None:
    whole = verdict("live", [healthy("node1"), healthy("node2", OLD, "0.1.0"), healthy("node3")])
    assert not whole.healthy and whole.sha is None and whole.version is None
    assert whole.problem == (
        f"node2 runs 0.1.0 ({OLD[:12]}), not 0.2.0 ({NEW[:12]}) like the others"
    )


def test_an_unhealthy_and_an_unreadable_host_are_both_named() -> None:
    sick = healthy("node2")
    assert sick.value is not None
    sick = Answer(
        "node2", value=replace(sick.value, healthy=False, problem="the service is failed")
    )
    gone = Answer[Status]("node3", error=ConnectionFailed("connection refused", host="node3"))
    whole = verdict("live", [healthy("node1"), sick, gone])
    assert not whole.healthy and whole.sha is None
    assert whole.problem == (
        "node3 could not be read: connection refused (host node3); node2: the service is failed"
    )
    assert whole.to_dict()["hosts"][2] == {
        "host": "node3",
        "status": None,
        "error": "connection refused (host node3)",
    }

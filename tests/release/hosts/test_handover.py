"""Deploys hand the socket over: a release that is not ready never answers, writers lose and
duplicate nothing through hand-overs, and a SIGKILL of either process mid-way tears nothing."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.release.deploykit import (
    PORTS,
    IngestLoad,
    NodeHandle,
    Project,
    Workers,
    deploy,
    deploy_in_background,
    event_ids,
    ingest_url,
    never_ready_build,
    setup_env,
    wait_until,
)

pytestmark = pytest.mark.node

HANDED = "handed the socket over"


@dataclass
class Clients(Workers):
    """Clients hammering an env's /health, each request on a new connection: which commits
    answered, and what failed."""

    url: str
    clients: int = 4
    commits: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def count(self) -> int:
        return self.clients

    def work(self, number: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        # The server closes each connection (as benchmarks/loadgen.py asks): its TIME_WAIT is
        # then the node's, not ours; closed here first, a fast machine ran out of local ports
        # (EADDRNOTAVAIL) within the test's 30 000 connections to one address.
        closing = {"Connection": "close"}
        with httpx.Client(timeout=10, limits=limits, headers=closing) as client:
            while not self.stopping:
                try:
                    answer = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures[type(exc).__name__] += 1
                    continue
                if answer.status_code != 200:
                    self.failures[f"HTTP {answer.status_code}"] += 1
                else:
                    self.commits[answer.json()["commit"]] += 1


def health_url(node: NodeHandle, env: str) -> str:
    return f"http://{node.env['DEPLOY_HOST']}:{PORTS[env]}/health"


def main_pid(node: NodeHandle) -> str:
    return node.ssh("systemctl show -p MainPID --value helionyx-dev.service").strip()


def finish_of(node: NodeHandle, env: str, sha: str) -> dict[str, str]:
    lines = node.ssh(f"cat /opt/helionyx/{env}/deploy-log.jsonl").splitlines()
    records: list[dict[str, str]] = [json.loads(line) for line in lines]
    return [r for r in records if r.get("step") == "finish" and r.get("sha") == sha][-1]


@pytest.fixture
def dev(project: Project, node: NodeHandle) -> NodeHandle:
    """The node with dev on 0.2.0, put in by a hand-over from 0.1.0, reachable from here."""
    node.env["DEPLOY_LISTEN_ADDRESS"] = "0.0.0.0"
    setup_env(project, node, "dev")
    first = deploy(project, node, "dev", "0.1.0")
    assert first.code == 0, first.stderr
    assert "restarted (" in first.stdout, "nothing was running: the first one starts"
    second = deploy(project, node, "dev", "0.2.0")
    assert second.code == 0, second.stderr
    assert HANDED in second.stdout, second.stdout
    # The successor's imports gave the serving release the CPU first: the unit lets them.
    journal = node.ssh("journalctl -u helionyx-dev.service --no-pager")
    assert "(imports and the log read at nice 10 for at most 3 s)" in journal, journal[-2000:]
    assert "setpriority refused" not in journal
    return node


def test_a_release_that_is_not_ready_or_crashes_at_start_answers_no_request(
    project: Project, dev: NodeHandle, tmp_path: Path
) -> None:
    good = project.shas["0.2.0"]
    never = never_ready_build(project)

    def status_while_handing_over() -> str | None:
        shown = project.cli("status", "--env", "dev", env=dev.env).stdout
        return shown if "hand-over  to" in shown else None

    with Clients(health_url(dev, "dev")) as seen:
        not_ready = deploy_in_background(project, dev, "dev", never, tmp_path / "never")
        shown = wait_until(status_while_handing_over, 30, "status to show the hand-over")
        assert not_ready.process.wait(timeout=120) != 0
        crashing = deploy(project, dev, "dev", "0.2.1")
        wait_until(lambda: sum(seen.commits.values()) > 50 or None, 30, "requests after both")

    assert f"hand-over  to {never[:12]} (starting, pid " in shown, shown
    assert "did not get ready beside the running release: not ready within 20 s" in (
        not_ready.stderr()
    )
    assert "deliberately never ready; it answered no request" in not_ready.stderr()
    assert crashing.code != 0
    assert "exited before it was ready" in crashing.stderr, crashing.stderr
    assert set(seen.commits) == {good}, f"only the running release answered: {seen.commits}"
    assert not seen.failures, seen.failures
    assert dev.current("dev") == good
    # The process that took over is systemd's own main process: a crash of it is noticed and
    # restarted (Restart=on-failure), not left to the next connection to start anew.
    restarts = "systemctl show -p NRestarts --value helionyx-dev.service"
    assert dev.ssh(restarts).strip() == "0"
    dev.ssh(f"kill -9 {main_pid(dev)}")
    wait_until(lambda: dev.ssh(restarts).strip() == "1" or None, 30, "systemd to restart it")
    for sha in (never, project.shas["0.2.1"]):
        finish = finish_of(dev, "dev", sha)
        assert finish["outcome"] == "rolled_back", finish
        assert finish["reason"].endswith(f"rolled back to {good[:12]}, which kept serving"), finish


def test_writers_lose_and_duplicate_nothing_through_hand_overs_and_kills(
    project: Project, dev: NodeHandle
) -> None:
    seed = random.randrange(1 << 30)
    instants = random.Random(seed)
    with IngestLoad(ingest_url(dev, "dev")) as load:
        load.wait_for_more(20)
        for _ in range(3):
            before = main_pid(dev)
            restarted = project.cli("restart", "--env", "dev", env=dev.env)
            assert restarted.code == 0 and HANDED in restarted.stdout, restarted.stderr
            assert main_pid(dev) != before, "another process serves"
            load.wait_for_more(20)
        # SIGKILL one of the two processes at a random instant of a hand-over.
        for attempt in range(4):
            victim = "successor" if attempt % 2 == 0 else "running"
            delay = instants.uniform(0.0, 0.6)  # a hand-over takes about half a second
            kill = (
                "main=$(systemctl show -p MainPID --value helionyx-dev.service); "
                "systemctl kill --kill-whom=main --signal=SIGHUP helionyx-dev.service; "
                f"sleep {delay:.2f}; "
                "now=$(cat /sys/fs/cgroup/system.slice/helionyx-dev.service/cgroup.procs); "
                + (
                    'for p in $now; do [ "$p" != "$main" ] && kill -9 $p; done; true'
                    if victim == "successor"
                    else "kill -9 $main; true"
                )
            )
            dev.ssh(kill)
            wait_until(
                lambda: dev.http("dev", "/health/ready")[0] == 200 or None,
                60,
                f"dev serving again (seed {seed}, {victim} killed after {delay:.2f} s)",
            )
            load.wait_for_more(10)

    ids = event_ids(dev, "dev")
    counts = Counter(ids)
    assert [i for i, n in counts.items() if n > 1] == [], f"duplicated (seed {seed})"
    missing = set(load.acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost (seed {seed})"
    assert len(load.acknowledged) > 100

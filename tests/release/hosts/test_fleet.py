"""An env of several hosts: every host worked on at once, the answers in the env's order, one
host's failure hiding none of the others; the commands not built for several hosts refuse."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from release.errors import ConnectionFailed, UsageError
from release.hosts import fleet
from release.hosts.context import Context
from release.hosts.environments import Environment, load
from release.hosts.remote import Remote
from tests.release.inprocess import REPO, pretend_host

FIFTY = tuple(f"node{n:02d}" for n in range(50))


def fifty(tmp_path: Path) -> Context:
    env = replace(load(REPO, "dev", environ={}), hosts=FIFTY, host=FIFTY[0])
    return Context(root=tmp_path, env=env)


def test_each_runs_every_host_at_once_and_answers_in_the_envs_order(tmp_path: Path) -> None:
    # Every worker waits for all 50: done one after the other, the barrier would time out.
    everyone = threading.Barrier(len(FIFTY), timeout=10)

    def work(on: Context) -> str:
        assert on.env.hosts == (on.env.host,)  # each host's step sees a one-host env
        everyone.wait()
        return on.env.host.upper()

    answers = fleet.each(fifty(tmp_path), work)
    assert [a.host for a in answers] == list(FIFTY)
    assert [a.value for a in answers] == [h.upper() for h in FIFTY]
    assert all(a.ok for a in answers)


def test_a_failing_host_hides_none_of_the_others(tmp_path: Path) -> None:
    def work(on: Context) -> int:
        if on.env.host in ("node07", "node31"):
            raise ConnectionFailed("connection refused", host=on.env.host)
        return len(on.env.host)

    answers = fleet.each(fifty(tmp_path), work)
    failed = {a.host: str(a.error) for a in answers if not a.ok}
    assert failed == {
        "node07": "connection refused (host node07)",
        "node31": "connection refused (host node31)",
    }
    assert sum(1 for a in answers if a.value == 6) == 48


@pytest.mark.parametrize("command", ["restore"])
def test_commands_not_built_for_several_hosts_refuse_before_dialling(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from release.cli import main  # noqa: PLC0415

    host = pretend_host(tmp_path)
    dialled: list[Environment] = []

    def never(env: Environment) -> Remote:
        dialled.append(env)
        raise AssertionError("dialled")

    extra = {"restore": ["--from", "20261201T000000Z"]}.get(command, [])
    hosts = ("node1", "node2", "node3")
    code = main(
        ["--repo", str(host.workspace), command, "--env", "dev", *extra],
        remote_factory=never,
        environments=lambda name: replace(host.env(name), hosts=hosts, host=hosts[0]),
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == UsageError.exit_code
    assert len(err) == 1, err
    assert (
        f"error: {command} works on an env of one host; dev has 3 (node1, node2, node3)" in err[0]
    )
    assert dialled == []

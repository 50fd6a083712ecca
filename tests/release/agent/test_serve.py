"""The agent's request loop: answers, refusals, and what it records on the way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import release.agent
from release.agent import protocol
from release.agent.protocol import STATE, STOP, Request
from release.agent.serve import HANDLERS
from release.hosts.bundle import AGENT_BUNDLE, BOOTSTRAP
from tests.release.agent.agentkit import send, target
from tests.release.inprocess import FakeSystem

AGENT_DIR = Path(release.agent.__file__).parent


@pytest.fixture
def system(tmp_path: Path) -> FakeSystem:
    return FakeSystem(tmp_path)


def test_every_command_of_the_protocol_has_a_handler() -> None:
    commands = {v.name for v in vars(protocol).values() if isinstance(v, protocol.Command)}
    assert commands == set(HANDLERS)


def test_an_unknown_command_is_one_line_not_a_crash(system: FakeSystem) -> None:
    answer = send(system, Request("explode", {}))
    assert answer == {"ok": False, "error": "unknown command 'explode'"}


def test_a_malformed_request_is_refused_in_one_line(system: FakeSystem) -> None:
    answer = send(system, Request("prepare", {}))  # no sha
    assert answer["ok"] is False and answer.get("error") == "'sha'"


def test_a_recorded_step_lands_in_the_deploy_log_with_its_outcome(system: FakeSystem) -> None:
    base = Path(target(system.root)["base_dir"])
    base.mkdir(parents=True)
    record = {"deploy_id": "d1", "step": "stop", "action": "stop"}
    assert send(system, STOP({}), record=record)["ok"]
    before = {"deploy_id": "d0", "step": "finish", "action": "deploy", "outcome": "succeeded"}
    send(system, Request("explode", {}), record={**record, "step": "x"}, log_before=[before])
    lines = [json.loads(line) for line in (base / protocol.DEPLOY_LOG).read_text().splitlines()]
    assert [(r["step"], r["outcome"]) for r in lines] == [
        ("stop", "ok"),
        ("finish", "succeeded"),
        ("x", "failed"),
    ]
    assert lines[-1]["reason"] == "unknown command 'explode'"
    assert {"started_at", "ended_at"} <= set(lines[0])


def test_state_of_a_host_never_set_up(system: FakeSystem) -> None:
    answer = send(system, STATE({"probe": True}))
    assert answer["ok"]
    result = answer["result"]
    assert result["releases"] == [] and result["current"] is None
    assert result["setup"] == {
        "user": False,
        "config_file": False,
        "unit_file": False,
        "base_dir": False,
    }


def test_the_bundle_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """-I -S: no site-packages, no user paths, no PYTHON* variables: the host has only python3."""
    request = {"command": "state", "target": target(tmp_path), "request": {}}
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP],
        input=f"{AGENT_BUNDLE}\n{json.dumps(request)}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    hello, answer = (json.loads(line) for line in done.stdout.splitlines())
    assert hello["result"]["agent"] > 0
    assert answer["ok"] and answer["result"]["current"] is None


def test_no_agent_module_imports_anything_but_the_standard_library_and_itself() -> None:
    for path in AGENT_DIR.glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from release", "import release")):
                pytest.fail(f"{path.name} imports {stripped!r}: on the host it is another package")


@pytest.mark.parametrize("path", sorted(AGENT_DIR.glob("*.py")), ids=lambda p: p.name)
def test_each_agent_module_stays_small(path: Path) -> None:
    # The protocol is every message's definition in one place, by design a long list.
    limit = 600 if path.name == "protocol.py" else 300
    assert len(path.read_text().splitlines()) <= limit

"""The fake machine answers as the real one: the same systemd questions the agent asks, put to
the real node (`node`) and to `FakeSystem` (no root), must get the same answers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from release.agent.errors import AgentError
from release.agent.protocol import SERVICE_USER
from release.agent.system import UNIT_PROPERTIES, HostSystem, last_line, parse_unit_state
from tests.release.inprocess import FakeSystem

#: The properties the agent decides on (the watch, the gate, status).
WATCHED = ("ActiveState", "SubState", "Result", "NRestarts", "LoadState")

# RestartSec=3: the looks over SSH that must catch the unit between its death and its restart
# have time to.
SOCKET = "[Socket]\nListenStream=127.0.0.1:8999\n"
SERVICE = (
    "[Unit]\nRequires=contract.socket\n"
    "[Service]\nExecStart=/bin/sleep infinity\nRestart=on-failure\nRestartSec=3\n"
)


class Machine(Protocol):
    """What the contract asks of a machine: systemctl, unit state, unit files, a clock."""

    def systemctl(self, *args: str) -> tuple[int, str]: ...

    def unit_state(self, unit: str) -> dict[str, str]: ...

    def install(self, name: str, text: str | None) -> None: ...

    def sleep(self, seconds: float) -> None: ...


class Fake:
    """The contract's questions to `FakeSystem`."""

    def __init__(self, system: FakeSystem) -> None:
        self.system = system

    def systemctl(self, *args: str) -> tuple[int, str]:
        return self.system.systemctl(*args)

    def unit_state(self, unit: str) -> dict[str, str]:
        return self.system.unit_state(unit)

    def install(self, name: str, text: str | None) -> None:
        path = self.system.units_dir / name
        path.unlink(missing_ok=True) if text is None else path.write_text(text)

    def sleep(self, seconds: float) -> None:
        self.system.sleep(seconds)


class Node:
    """The contract's questions to the real node, over SSH, asked as `HostSystem` asks them."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def systemctl(self, *args: str) -> tuple[int, str]:
        done = subprocess.run(
            self.node.node_command("systemctl " + " ".join(args)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode, last_line(done.stderr)

    def unit_state(self, unit: str) -> dict[str, str]:
        return parse_unit_state(
            self.node.ssh(f"systemctl show {unit}.service --property={UNIT_PROPERTIES}")
        )

    def install(self, name: str, text: str | None) -> None:
        path = self.node.path(f"/etc/systemd/system/{name}")
        path.unlink(missing_ok=True) if text is None else path.write_text(text)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def answer(outcome: tuple[int, str]) -> object:
    """A success by its code alone (systemd may add warnings), a failure with its message."""
    return outcome[0] if outcome[0] == 0 else outcome


def watched(state: dict[str, str]) -> dict[str, str]:
    return {key: state.get(key, "") for key in WATCHED}


def until(machine: Machine, check: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    """The unit's state once `check` holds (10 s on the machine's own clock)."""
    for _ in range(200):
        state = machine.unit_state("contract")
        if check(state):
            return watched(state)
        machine.sleep(0.05)
    raise AssertionError(f"the unit never got there: {watched(state)}")


def questions(machine: Machine) -> list[object]:
    """What the agent asks (units.py, activate.py, backup.py), of a unit that does not exist
    and of one that does, crashes and is restarted by systemd."""
    seen: list[object] = [
        answer(machine.systemctl(*args))
        for args in (
            ("is-active", "--quiet", "nope.service"),
            ("is-active", "--quiet", "nope.socket"),
            ("start", "nope.service"),
            ("restart", "nope.socket"),
            ("stop", "nope.service"),
            ("enable", "--quiet", "nope.socket"),
            ("reset-failed", "nope.socket"),
        )
    ]
    seen.append(watched(machine.unit_state("nope")))
    machine.install("contract.socket", SOCKET)
    machine.install("contract.service", SERVICE)
    try:
        seen.append(answer(machine.systemctl("daemon-reload")))
        seen.append(answer(machine.systemctl("is-active", "--quiet", "contract.socket")))
        seen.append(answer(machine.systemctl("start", "contract.service")))
        seen.append(answer(machine.systemctl("is-active", "--quiet", "contract.socket")))
        seen.append(watched(machine.unit_state("contract")))
        machine.systemctl("kill", "--signal=SIGKILL", "contract.service")
        seen.append(until(machine, lambda s: s["ActiveState"] != "active"))
        seen.append(until(machine, lambda s: s["ActiveState"] == "active"))
        seen.append(answer(machine.systemctl("restart", "contract.service")))
        seen.append(watched(machine.unit_state("contract")))
        seen.append(answer(machine.systemctl("stop", "contract.service", "contract.socket")))
        seen.append(watched(machine.unit_state("contract")))
        seen.append(answer(machine.systemctl("is-active", "--quiet", "contract.socket")))
    finally:
        machine.systemctl("stop", "contract.service", "contract.socket")
        machine.install("contract.socket", None)
        machine.install("contract.service", None)
        machine.systemctl("daemon-reload")
    return seen


def state(active: str, sub: str, result: str = "success", restarts: int = 0) -> dict[str, str]:
    return dict(zip(WATCHED, (active, sub, result, str(restarts), "loaded"), strict=True))


#: As the node answered (Debian 12, systemd 252).
SYSTEMD = [
    (3, ""),
    (3, ""),
    (5, "Failed to start nope.service: Unit nope.service not found."),
    (5, "Failed to restart nope.socket: Unit nope.socket not found."),
    (5, "Failed to stop nope.service: Unit nope.service not loaded."),
    (1, "Failed to enable unit: Unit file nope.socket does not exist."),
    (1, "Failed to reset failed state of unit nope.socket: Unit nope.socket not loaded."),
    {**state("inactive", "dead"), "LoadState": "not-found"},
    0,
    (3, ""),
    0,
    0,  # Requires= started the socket with it
    state("active", "running"),
    state("activating", "auto-restart", "signal"),  # killed: restarted after RestartSec=
    state("active", "running", restarts=1),
    0,
    state("active", "running"),  # a restart by hand starts the count again
    0,
    state("inactive", "dead"),
    (3, ""),
]


def test_the_fake_machine_answers_the_agents_systemd_questions_as_systemd(
    tmp_path: Path,
) -> None:
    assert questions(Fake(FakeSystem(tmp_path))) == SYSTEMD


@pytest.mark.node
def test_the_node_answers_the_agents_systemd_questions_as_the_fake_expects(node: Any) -> None:
    assert questions(Node(node)) == SYSTEMD


def test_giving_a_file_to_a_missing_service_user_fails_alike(tmp_path: Path) -> None:
    assert HostSystem().service_user() is None, f"this machine has a user {SERVICE_USER}"
    path = tmp_path / "file"
    path.write_text("")
    refusals = []
    for system in (HostSystem(), FakeSystem(tmp_path)):
        with pytest.raises(AgentError) as refused:
            system.chown(path)
        refusals.append(str(refused.value))
    assert refusals == [f"there is no user {SERVICE_USER} on this host"] * 2

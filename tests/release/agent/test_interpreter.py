"""The agent's view of the host's interpreter, and its refusal of one too old to run it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from release.agent import interpreter
from release.agent.venv import interpreter_of
from release.hosts.bundle import AGENT_BUNDLE, BOOTSTRAP


def test_facts_name_this_interpreter_machine_and_c_library() -> None:
    found = interpreter.facts()
    assert found["python"] == platform.python_version()
    assert found["implementation"] == "cpython"
    assert found["machine"] == platform.machine()
    assert found["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[1]  # type: ignore[union-attr]


def test_an_interpreter_below_the_floor_answers_its_hello_with_what_it_is() -> None:
    refusal = interpreter.too_old({**interpreter.facts(), "python": "3.10.12"})
    assert refusal is not None and refusal["ok"] is False
    assert refusal["error"] == "python3 is 3.10.12, not 3.11+"
    assert refusal["platform"]["python"] == "3.10.12"  # type: ignore[index]
    assert interpreter.too_old(interpreter.facts()) is None


def test_the_interpreter_module_stays_readable_by_old_pythons() -> None:
    """No syntax newer than Python 3.7's (it is run before the agent's floor is checked)."""
    import ast  # noqa: PLC0415

    source = Path(interpreter.__file__).read_text()
    ast.parse(source, feature_version=(3, 7))


def test_the_real_bootstrap_says_hello_with_the_platform() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP],
        input=AGENT_BUNDLE + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    hello = json.loads(done.stdout.splitlines()[0])
    assert hello["result"]["platform"] == interpreter.facts()


@pytest.mark.parametrize(
    ("pyvenv", "runs", "expected"),
    [
        ("version_info = 3.11.2\n", "python3.11", ("3.11", True)),
        ("version_info = 3.11.2\n", "python3.13", ("3.11", False)),
        ("version_info = 3.11.2\n", None, ("3.11", False)),
        ("home = /usr/bin\n", "python3.13", (None, True)),
    ],
)
def test_a_venv_knows_the_python_it_was_built_for_and_whether_it_still_runs_it(
    tmp_path: Path, pyvenv: str, runs: str | None, expected: tuple[str | None, bool]
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(pyvenv)
    base = tmp_path / "usr" / "bin"
    base.mkdir(parents=True)
    if runs is not None:
        (base / runs).write_text("")
    # A venv that names python3 follows wherever python3 points now.
    (base / "python3").symlink_to(runs or "python3.11")
    (venv / "bin" / "python").symlink_to(base / "python3")
    assert interpreter_of(venv) == expected

"""The README's quick start, run as written: its commands come from its own code blocks."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    """The one-line commands in the README's quick-start code blocks, in order."""
    text = (REPO / "README.md").read_text()
    section = text[
        text.index("## Quick start") : text.index("\n## ", text.index("## Quick start") + 5)
    ]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quick_start_names_the_demo_and_the_tests_first() -> None:
    commands = quick_start_commands()
    assert commands[:2] == ["make demo", "make test"]
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for command in commands:
        if command.startswith("make "):
            assert command.split()[1] in targets


@pytest.mark.node
def test_the_readme_main_command_runs_the_whole_pipeline_on_a_throwaway_node(
    tmp_path: Path,
) -> None:
    command = quick_start_commands()[0]
    done = subprocess.run(
        command.split(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HELIONYX_DEMO_DIR": str(tmp_path / "demo")},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "messages ingested: 4, present after the rollback: 4" in output
    for step in ("deploy v0.1.0", "deploy v0.2.0", "roll back to v0.1.0"):
        assert re.search(rf"{re.escape(step)}\s+\d+\.\d+ s", output), step
    subprocess.run(["make", "demo-clean"], cwd=REPO, capture_output=True, check=False, timeout=120)

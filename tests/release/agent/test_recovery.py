"""An activation cut short by a host reboot is undone at the next boot, and only then."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from release.agent import deploylog, recovery
from release.agent.files import flip
from release.agent.layout import Layout
from release.agent.protocol import ACTIVATION, MANIFEST, LogRecord
from tests.release.agent.agentkit import target

OLD, NEW, OLDER = "a" * 40, "b" * 40, "c" * 40
FINISH: LogRecord = {"deploy_id": "d-1", "action": "deploy", "step": "finish", "sha": NEW}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout.of(target(tmp_path))
    for sha in (OLD, NEW, OLDER):
        (layout.releases / sha).mkdir(parents=True)
        (layout.releases / sha / MANIFEST).write_text("{}")
    flip(layout.previous, f"releases/{OLDER}")
    flip(layout.current, f"releases/{OLD}")
    return layout


def cut_short(layout: Layout, boot: str = "earlier-boot") -> None:
    """A deploy of NEW that recorded its intent and switched, then the host went down."""
    recovery.begin(layout, boot, NEW, FINISH)
    flip(layout.previous, f"releases/{OLD}")
    flip(layout.current, f"releases/{NEW}")


def test_an_activation_of_an_earlier_boot_is_undone_and_recorded(layout: Layout) -> None:
    cut_short(layout)
    assert (layout.base / ACTIVATION).stat().st_mode & 0o777 == 0o600

    said = recovery.recover(layout, "this-boot")

    assert said is not None and "back on aaaaaaaaaaaa" in said
    assert (layout.link_target(layout.current), layout.link_target(layout.previous)) == (
        OLD,
        OLDER,
    )
    (record,) = deploylog.finishes(deploylog.read_decisive(layout.log))
    assert (record["deploy_id"], record["outcome"]) == ("d-1", "rolled_back")
    assert "the host restarted before the activation of bbbbbbbbbbbb finished" in record["reason"]
    assert not (layout.base / ACTIVATION).exists()
    assert recovery.recover(layout, "yet-another-boot") is None, "undone once"


def test_an_activation_of_this_boot_is_left_to_its_agent(layout: Layout) -> None:
    cut_short(layout, boot="this-boot")

    assert recovery.recover(layout, "this-boot") is None
    assert layout.link_target(layout.current) == NEW
    assert (layout.base / ACTIVATION).exists()
    assert deploylog.read_decisive(layout.log) == []


def test_an_activation_whose_outcome_was_recorded_is_not_undone(layout: Layout) -> None:
    cut_short(layout)
    deploylog.append(layout.log, [{**FINISH, "outcome": "succeeded"}])

    assert recovery.recover(layout, "this-boot") is None
    assert layout.link_target(layout.current) == NEW
    assert not (layout.base / ACTIVATION).exists()
    assert len(deploylog.read_decisive(layout.log)) == 1


def test_a_first_deploy_cut_short_has_nothing_to_go_back_to(tmp_path: Path) -> None:
    layout = Layout.of(target(tmp_path))
    (layout.releases / NEW).mkdir(parents=True)
    (layout.releases / NEW / MANIFEST).write_text("{}")
    recovery.begin(layout, "earlier-boot", NEW, FINISH)
    flip(layout.current, f"releases/{NEW}")

    said = recovery.recover(layout, "this-boot")

    assert said is not None and said.endswith("no previous release to go back to")
    assert layout.link_target(layout.current) == NEW
    (record,) = deploylog.read_decisive(layout.log)
    assert record["outcome"] == "failed"


def test_the_installed_copy_runs_on_its_own_as_the_unit_runs_it(layout: Layout) -> None:
    assert recovery.install(layout) != []
    assert recovery.install(layout) == [], "unchanged: nothing rewritten"
    cut_short(layout)
    where = target(layout.base.parents[2])
    args = [where[k] for k in ("env", "base_dir", "data_dir", "config_file", "unit", "port")]

    # As ExecStartPre runs it: a bare interpreter, no project on sys.path.
    ran = subprocess.run(
        [sys.executable, "-B", "-E", "-s", str(layout.base / "agent" / "recover.py")]
        + [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    assert "helionyx dev: the host restarted before the activation" in ran.stderr
    assert layout.link_target(layout.current) == OLD
    (record,) = deploylog.read_decisive(layout.log)
    assert json.loads(json.dumps(record))["outcome"] == "rolled_back"

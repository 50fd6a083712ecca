"""Release retention: the one policy (release.agent.prune.doomed), and prune on a host."""

from __future__ import annotations

import json
import os
from pathlib import Path

from release.agent.layout import Layout
from release.agent.protocol import FAILED, FINISH, PRUNE, ROLLED_BACK, SUCCEEDED, LogRecord
from release.agent.prune import doomed
from tests.release.agent.agentkit import ask, target
from tests.release.inprocess import FakeSystem


def live(sha: str, outcome: str = SUCCEEDED, action: str = "deploy") -> LogRecord:
    return {"step": FINISH, "action": action, "sha": sha, "outcome": outcome}


def test_the_newest_deployed_are_kept_not_the_newest_built() -> None:
    log = [live("c"), live("a"), live("b")]  # deployed c, then a, then b
    assert doomed(["a", "b", "c"], log, keep=2, protected=set()) == ["c"]


def test_protected_releases_stay_even_beyond_the_count() -> None:
    log = [live("a"), live("b"), live("c")]
    assert doomed(["a", "b", "c"], log, keep=1, protected={"a"}) == ["b"]


def test_failed_and_rolled_back_releases_go_first() -> None:
    log = [live("a"), live("b", FAILED), live("c", ROLLED_BACK), live("d")]
    assert sorted(doomed(["a", "b", "c", "d"], log, keep=3, protected=set())) == ["b", "c"]


def test_a_release_healthy_since_it_failed_is_good_again() -> None:
    log = [live("a", FAILED), live("a", SUCCEEDED, action="restart"), live("b")]
    assert doomed(["a", "b"], log, keep=2, protected=set()) == []


def test_releases_the_log_never_names_rank_after_the_deployed_ones() -> None:
    log = [live("a"), live("b")]
    assert doomed(["x", "a", "b"], log, keep=2, protected=set()) == ["x"]


def test_keep_zero_removes_all_but_the_protected() -> None:
    log = [live("a"), live("b")]
    # b, the newest, is not protected: with nothing to keep it goes too.
    assert doomed(["a", "b"], log, keep=0, protected={"a"}) == ["b"]


# -- the rule as the host applies it: current and previous read from the host's own links -------
def host_with_releases(root: Path, shas: list[str], current: str, previous: str) -> Layout:
    """Release directories, oldest first, the deploy log naming them in that order, and the
    two links as a deploy leaves them."""
    layout = Layout.of(target(root))
    layout.releases.mkdir(parents=True)
    for age, sha in enumerate(shas):
        (layout.releases / sha).mkdir()
        os.utime(layout.releases / sha, (1_000_000 + age, 1_000_000 + age))
    layout.log.write_text("".join(json.dumps(live(sha)) + "\n" for sha in shas))
    layout.current.symlink_to(layout.releases / current)
    layout.previous.symlink_to(layout.releases / previous)
    return layout


def test_prune_keeps_previous_even_when_it_is_older_than_the_kept_window(tmp_path: Path) -> None:
    # previous is the oldest of five, and only one release is to be kept besides.
    layout = host_with_releases(tmp_path, ["a", "b", "c", "d", "e"], current="e", previous="a")
    answer = ask(FakeSystem(tmp_path), PRUNE({"keep": 1, "protect": []}))
    assert sorted(answer["removed"]) == ["b", "c", "d"]
    assert sorted(p.name for p in layout.release_dirs()) == ["a", "e"]


def test_prune_keeps_current_and_previous_with_keep_one(tmp_path: Path) -> None:
    layout = host_with_releases(tmp_path, ["a", "b", "c"], current="c", previous="b")
    assert ask(FakeSystem(tmp_path), PRUNE({"keep": 1, "protect": []}))["removed"] == ["a"]
    assert sorted(p.name for p in layout.release_dirs()) == ["b", "c"]


def test_releases_the_log_never_names_go_oldest_first(tmp_path: Path) -> None:
    layout = host_with_releases(tmp_path, ["a", "b"], current="b", previous="a")
    # Built and never live: "y" long ago, "x" just now (names in the other order on purpose).
    for name, mtime in (("y", 2_000_000), ("x", 3_000_000)):
        (layout.releases / name).mkdir()
        os.utime(layout.releases / name, (mtime, mtime))
    assert ask(FakeSystem(tmp_path), PRUNE({"keep": 3, "protect": []}))["removed"] == ["y"]
    assert sorted(p.name for p in layout.release_dirs()) == ["a", "b", "x"]

"""Release retention: the one policy (release.agent.prune.doomed)."""

from __future__ import annotations

from release.agent.protocol import FAILED, FINISH, ROLLED_BACK, SUCCEEDED, LogRecord
from release.agent.prune import doomed


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
    assert doomed(["a", "b"], log, keep=0, protected={"b"}) == ["a"]

"""The staging gate as a rule over the required env's deploy log (no host needed)."""

from __future__ import annotations

from datetime import datetime

from release.agent.protocol import FAILED, FINISH, ROLLED_BACK, SUCCEEDED, LogRecord
from release.hosts.gate import refusal
from release.hosts.host import HostRelease, HostState

A, B = "a" * 40, "b" * 40


def at(clock: str) -> float:
    return datetime.fromisoformat(f"2026-12-01T{clock}Z").timestamp()


def went_live(sha: str, clock: str, outcome: str = SUCCEEDED) -> LogRecord:
    return {
        "step": FINISH,
        "action": "deploy",
        "sha": sha,
        "outcome": outcome,
        "ended_at": f"2026-12-01T{clock}Z",
    }


def staging(current: str | None, *log: LogRecord) -> HostState:
    releases = {s: HostRelease(s, "0.1.0", "v0.1.0", None) for s in (A, B)}
    return HostState(releases, [], current, None, None, {}, {}, {}, list(log))


def test_a_release_never_deployed_there_is_refused() -> None:
    assert refusal(
        staging(B, went_live(B, "10:00:00")), A, where="staging", soak=0, now=at("11:00:00")
    ) == ("aaaaaaaaaaaa was never deployed to staging successfully")


def test_one_rolled_back_there_says_it_failed_not_that_it_never_came() -> None:
    state = staging(B, went_live(B, "10:00:00"), went_live(A, "10:05:00", ROLLED_BACK))
    assert refusal(state, A, where="staging", soak=0, now=at("11:00:00")) == (
        "aaaaaaaaaaaa failed on staging at 2026-12-01T10:05:00Z"
    )


def test_one_still_soaking_says_how_long_it_has_to_go() -> None:
    state = staging(A, went_live(A, "10:00:00"))
    assert refusal(state, A, where="staging", soak=300, now=at("10:01:00")) == (
        "aaaaaaaaaaaa has served on staging for 60 s of the 300 s soak: 240 s to go"
    )
    assert refusal(state, A, where="staging", soak=300, now=at("10:05:00")) is None


def test_one_that_failed_there_since_is_refused() -> None:
    state = staging(A, went_live(A, "10:00:00"), went_live(A, "10:10:00", FAILED))
    assert refusal(state, A, where="staging", soak=60, now=at("11:00:00")) == (
        "aaaaaaaaaaaa failed on staging at 2026-12-01T10:10:00Z"
    )


def test_one_replaced_before_its_soak_ended_is_refused() -> None:
    state = staging(B, went_live(A, "10:00:00"), went_live(B, "10:00:30"))
    assert refusal(state, A, where="staging", soak=60, now=at("11:00:00")) == (
        "aaaaaaaaaaaa served on staging for 30 s of the 60 s soak before another release "
        "replaced it"
    )


def test_one_that_soaked_and_was_then_replaced_may_go_on() -> None:
    state = staging(B, went_live(A, "10:00:00"), went_live(B, "10:30:00"))
    assert refusal(state, A, where="staging", soak=600, now=at("11:00:00")) is None

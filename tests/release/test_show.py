import pytest

from release.hosts.status import Status
from release.show import PrintReporter, env_status


def test_a_countdown_in_a_log_is_a_line_every_ten_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporter = PrintReporter()
    for done in range(31):
        reporter.progress({"step": "watch", "done": float(done), "total": 30.0})
    reporter.note("healthy")
    err = capsys.readouterr().err.splitlines()
    assert err == [f"  watch: {left} s left of 30 s" for left in (30, 20, 10, 0)]


def test_a_new_countdown_starts_over_after_a_step(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = PrintReporter()
    reporter.progress({"step": "watch", "done": 0.0, "total": 5.0})
    reporter.step("go live", 5.0)
    reporter.progress({"step": "watch", "done": 1.0, "total": 5.0})
    assert capsys.readouterr().err.count("watch:") == 2


def test_a_step_that_outlasts_its_estimate_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = PrintReporter()
    reporter.progress({"step": "read model", "done": 1.0, "total": 0.2})
    reporter.progress({"step": "read model", "done": 11.0, "total": 0.2})
    assert capsys.readouterr().err.splitlines() == [
        "  read model: 1 s, about 0.2 s expected",
        "  read model: 11 s, about 0.2 s expected",
    ]


def a_status(body: dict[str, object]) -> Status:
    return Status(
        env="staging",
        host="node1",
        unit="helionyx-staging.service",
        version="2.0.0",
        sha="2" * 40,
        deployed_at=None,
        deployed_by=None,
        deployed_from=None,
        healthy=True,
        problem=None,
        service={"state": "active", "sub_state": "running"},
        health={"status": 200, "body": body},
        releases=[],
        lock=None,
        leftovers=[],
    )


def test_status_says_what_a_release_forced_onto_the_log_skips(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_status(a_status({"status": "healthy"}), releases_only=False)
    assert "skipping" not in capsys.readouterr().out
    env_status(a_status({"unreadable_events": {"NoteCaptured v2": 3}}), releases_only=False)
    assert (
        "skipping   3 NoteCaptured v2 event(s) it cannot read; roll forward to serve them"
        in capsys.readouterr().out.splitlines()
    )

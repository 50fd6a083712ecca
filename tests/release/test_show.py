import pytest

from release.show import PrintReporter


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

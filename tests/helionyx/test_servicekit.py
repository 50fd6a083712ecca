"""The test kit's own rules that the suite's waits rely on."""

from __future__ import annotations

import pytest

from tests.helionyx.servicekit import poll


def test_poll_waits_through_a_check_that_answers_false() -> None:
    # A comparison answers False while it waits; returning that at once made a node test
    # reboot the host before the go-live it meant to interrupt had even begun.
    answers = iter([False, False, True])
    assert poll(lambda: next(answers), 5, "the third answer", interval=0) is True


def test_poll_fails_after_its_timeout_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        poll(lambda: False, 0.05, "the impossible", interval=0.01)

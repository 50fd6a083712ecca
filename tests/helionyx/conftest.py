"""Fixtures for the service's tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """`helionyx.cli.main` configures logging for the process: put it back after each test, so a
    handler bound to one test's captured stderr is not left to the next."""
    root, noisy = logging.getLogger(), logging.getLogger("asyncio")
    handlers, level, filters = list(root.handlers), root.level, list(noisy.filters)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    noisy.filters[:] = filters

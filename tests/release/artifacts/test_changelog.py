from datetime import date

import pytest
from packaging.version import Version

from release.artifacts.changelog import cut_release, section
from release.errors import ChangelogError

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- a thing

## [0.1.0] - 2026-01-01

### Added
- the start

[0.1.0]: https://example.invalid/v0.1.0
"""


def test_cutting_moves_unreleased_entries_under_the_new_version() -> None:
    text = cut_release(CHANGELOG, Version("0.2.0"), date(2026, 2, 3))
    assert (
        "## [Unreleased]\n\n## [0.2.0] - 2026-02-03\n\n### Added\n- a thing\n\n## [0.1.0]" in text
    )
    assert section(text, "Unreleased") == ""
    assert section(text, "0.2.0") == "### Added\n- a thing"
    assert section(text, "0.1.0") == "### Added\n- the start"
    assert text.endswith("[0.1.0]: https://example.invalid/v0.1.0\n")


def test_an_empty_unreleased_section_is_refused() -> None:
    empty = cut_release(CHANGELOG, Version("0.2.0"), date(2026, 2, 3))
    with pytest.raises(ChangelogError, match="Unreleased section of CHANGELOG.md is empty"):
        cut_release(empty, Version("0.3.0"), date(2026, 2, 3))


def test_a_version_that_already_has_a_section_is_refused() -> None:
    with pytest.raises(ChangelogError, match="already has a section for 0.1.0"):
        cut_release(CHANGELOG, Version("0.1.0"), date(2026, 2, 3))

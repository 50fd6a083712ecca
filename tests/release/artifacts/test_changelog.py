from datetime import date

import pytest
from packaging.version import Version

from release.artifacts.changelog import cut_release, require_data_notes, section
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


DATA_CHANGE = "projections schema 1 -> 2"


def test_a_release_that_changes_data_needs_migration_and_rollback_notes() -> None:
    bare = "# Changelog\n\n## [Unreleased]\n\n- Notes get tags.\n"
    with pytest.raises(ChangelogError, match="no Migration or Rollback notes"):
        require_data_notes(bare, DATA_CHANGE)
    half = bare + "\n### Migration\n\nDeploy with MIGRATE=1.\n\n### Rollback\n\n"
    with pytest.raises(
        ChangelogError, match=r"changes data \(projections schema 1 -> 2\).*Rollback"
    ):
        require_data_notes(half, DATA_CHANGE)
    whole = half + "Safe: 0.1.0 keeps its read model.\n\n## [0.1.0] - 2026-11-01\n\n- First.\n"
    require_data_notes(whole, DATA_CHANGE)

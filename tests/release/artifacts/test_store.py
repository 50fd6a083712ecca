"""The one version resolver every store uses (release.artifacts.store.resolve)."""

from __future__ import annotations

import pytest

from release.artifacts.store import ReleaseInfo, resolve
from release.errors import NotFound, UsageError

INFOS = [
    ReleaseInfo("0.1.0", "v0.1.0", "a" * 40, "2026-12-01T10:00:00Z", 1),
    ReleaseInfo("0.1.7", "v0.1.7", "b" * 40, "2026-12-02T10:00:00Z", 1),
    ReleaseInfo("0.10.0", "v0.10.0", "c" * 40, "2026-12-03T10:00:00Z", 1),
    ReleaseInfo("1.0.0-rc.1", "v1.0.0-rc.1", "d" * 39 + "e", "2026-12-04T10:00:00Z", 1),
]


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("0.1.0", "0.1.0"),
        ("v0.1.0", "0.1.0"),
        ("0.1.7", "0.1.7"),
        ("v0.10.0", "0.10.0"),
        ("1.0.0-rc.1", "1.0.0-rc.1"),
        ("bbbbbbb", "0.1.7"),
        ("c" * 40, "0.10.0"),
    ],
)
def test_a_version_tag_or_sha_prefix_names_exactly_one_release(ref: str, version: str) -> None:
    assert resolve(INFOS, ref).version == version


@pytest.mark.parametrize("ref", ["0.1", "v0.1", "0", "0.1.", "1.0.0", "0.10", "bbbbbb", "dddddd"])
def test_a_prefix_of_a_version_or_a_short_sha_names_none(ref: str) -> None:
    with pytest.raises(NotFound, match=f"unknown version '{ref}'"):
        resolve(INFOS, ref)


def test_a_sha_prefix_two_releases_share_names_none() -> None:
    twins = [*INFOS, ReleaseInfo("0.2.0", "v0.2.0", "b" * 39 + "f", "2026-12-05T10:00:00Z", 1)]
    with pytest.raises(NotFound):
        resolve(twins, "bbbbbbbb")


def test_no_version_at_all_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no version given"):
        resolve(INFOS, "  ")

"""The one version resolver every store uses (release.artifacts.store.resolve), and the
directory store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from release.agent import checksums
from release.agent.protocol import MANIFEST
from release.artifacts.artifact import Artifact, artifact_files
from release.artifacts.store import DirStore, Outcome, ReleaseInfo, resolve
from release.artifacts.stores import open_store
from release.errors import AlreadyPublished, NotFound, UsageError
from tests.release.artifacts.github_standin import serving
from tests.release.artifacts.githubkit import COMMIT, TOKEN, tiny_artifact

DIR_OR_GITHUB = "use dir:PATH or github:OWNER/REPO"

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


# -- the directory store ------------------------------------------------------------------------
class Recorded:
    """A Progressable that keeps what it was told (and can fail the transfer midway)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.started: list[tuple[str, int]] = []
        self.advanced: list[int] = []
        self.finished = 0
        self.fail_after = fail_after

    def start(self, label: str, total: int) -> None:
        self.started.append((label, total))

    def advance(self, amount: int) -> None:
        if self.fail_after is not None and len(self.advanced) >= self.fail_after:
            raise KeyboardInterrupt
        self.advanced.append(amount)

    def finish(self) -> None:
        self.finished += 1


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_publishing_copies_the_artifact_whole_and_lists_it(tmp_path: Path) -> None:
    artifact = tiny_artifact(tmp_path / "dist")
    store = DirStore(tmp_path / "store")
    progress = Recorded()
    assert store.publish(artifact, "notes", progress) is Outcome.CREATED
    published = tmp_path / "store" / "0.1.0"
    assert listing(published) == listing(artifact.directory)
    assert published.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in store.root.iterdir()] == ["0.1.0"], "no staging left"
    size = sum(len(data) for data in listing(artifact.directory).values())
    assert progress.started == [("copying 0.1.0", size)]
    assert sum(progress.advanced) == size and progress.finished == 1
    assert store.releases() == [
        ReleaseInfo(
            "0.1.0",
            "v0.1.0",
            COMMIT,
            "2026-12-01T10:00:00Z",
            artifact.manifest.size,
            "3.11 x86_64 glibc 2.36+",  # built before targets were declared
        )
    ]
    assert store.find("v0.1.0").sha == COMMIT


def test_publishing_again_is_a_no_op_and_other_bytes_are_refused(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "store")
    store.publish(tiny_artifact(tmp_path / "a"), "", Recorded())
    assert store.publish(tiny_artifact(tmp_path / "b"), "", Recorded()) is Outcome.UNCHANGED
    assert store.publish(Artifact(store.root / "0.1.0", tiny_artifact(tmp_path / "c").manifest),
                         "", Recorded()) is Outcome.UNCHANGED  # fmt: skip
    before = listing(store.root)
    with pytest.raises(AlreadyPublished) as refused:
        store.publish(tiny_artifact(tmp_path / "d", commit="5" * 40), "", Recorded())
    assert refused.value.message == f"dir:{store.root} already holds 0.1.0 with different bytes"
    assert refused.value.hint == "releases are immutable; publish a new version"
    assert refused.value.release == "0.1.0"
    assert listing(store.root) == before


def test_an_interrupted_publish_leaves_nothing_and_the_next_one_completes(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "store")
    artifact = tiny_artifact(tmp_path / "dist")
    with pytest.raises(KeyboardInterrupt):
        store.publish(artifact, "", Recorded(fail_after=1))
    assert list(store.root.iterdir()) == [], "neither the version nor its staging"
    assert store.releases() == []
    assert store.publish(artifact, "", Recorded()) is Outcome.CREATED


def test_only_complete_artifacts_are_listed_newest_built_first(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "store")
    for version, built in (("0.1.0", "10:00"), ("0.2.0", "12:00"), ("0.3.0", "11:00")):
        artifact = tiny_artifact(tmp_path / "dist", version)
        text = artifact.manifest.to_json().replace("T10:00:00Z", f"T{built}:00Z")
        (artifact.directory / MANIFEST).write_text(text)
        checksums.write(artifact.directory, [*artifact_files(artifact.directory)])
        shutil.copytree(artifact.directory, store.root / version)
    shutil.copytree(store.root / "0.1.0", store.root / ".0.4.0.staging")
    (store.root / "0.5.0").mkdir()  # no SHA256SUMS: not complete
    assert [r.version for r in store.releases()] == ["0.2.0", "0.3.0", "0.1.0"]


def test_fetching_copies_one_artifact_over_what_was_there(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "store")
    store.publish(tiny_artifact(tmp_path / "dist"), "", Recorded())
    stale = tmp_path / "cache" / "0.1.0"
    stale.mkdir(parents=True)
    (stale / "leftover").write_text("x")
    fetched = store.fetch("v0.1.0", tmp_path / "cache", Recorded())
    assert fetched == stale
    assert listing(fetched) == listing(store.root / "0.1.0")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["0.1.0"]
    assert store.fetch("0.1.0", store.root, Recorded()) == store.root / "0.1.0", "in place"


@pytest.mark.parametrize(
    ("spec", "message", "hint"),
    [
        ("dist/releases", "store 'dist/releases' is not SCHEME:WHERE", DIR_OR_GITHUB),
        ("dir:", "store 'dir:' is not SCHEME:WHERE", DIR_OR_GITHUB),
        ("s3:bucket", "unknown store scheme 's3'", DIR_OR_GITHUB),
    ],
)
def test_a_store_spec_is_refused_in_one_line(spec: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as refused:
        open_store(spec)
    assert (refused.value.message, refused.value.hint) == (message, hint)


def test_a_store_spec_names_its_kind(tmp_path: Path) -> None:
    store = open_store(f"dir:{tmp_path}")
    assert isinstance(store, DirStore) and store.root == tmp_path
    assert store.label == f"dir:{tmp_path}"
    assert open_store("github:o/r", api_url="http://127.0.0.1:9").label == "github:o/r"


def test_no_version_and_an_unknown_one_say_how_to_find_one() -> None:
    with pytest.raises(UsageError) as empty:
        resolve(INFOS, "")
    assert (empty.value.message, empty.value.hint) == (
        "no version given",
        "pass VERSION= a version, tag or SHA (make releases-available lists them)",
    )
    with pytest.raises(NotFound) as unknown:
        resolve(INFOS, "9.9.9")
    assert unknown.value.hint == (
        "the store holds: 1.0.0-rc.1, 0.10.0, 0.1.7, 0.1.0 (make releases-available lists them)"
    )
    later = [
        ReleaseInfo(f"2.{n}.0", f"v2.{n}.0", f"{n}" * 40, f"2026-12-0{5 + n}T10:00:00Z", 1)
        for n in range(2)
    ]
    with pytest.raises(NotFound) as five:
        resolve([*INFOS, *later], "9.9.9")
    assert five.value.hint == (
        "the store holds: 2.1.0, 2.0.0, 1.0.0-rc.1, 0.10.0, 0.1.7 (make releases-available "
        "lists them)"
    ), "the five newest of six"
    with pytest.raises(NotFound) as none:
        resolve([], "0.1.0")
    assert none.value.hint == "the store holds: none (make releases-available lists them)"


@pytest.mark.parametrize("ref", ["a0.1.0", "10.1.0", "V0.1.0"])
def test_only_a_leading_v_before_a_digit_is_dropped(ref: str) -> None:
    with pytest.raises(NotFound):
        resolve(INFOS, ref)


def test_publishing_makes_the_store_and_copies_under_a_hidden_name(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "new" / "disk" / "store")
    seen: list[list[str]] = []

    class Watching(Recorded):
        def advance(self, amount: int) -> None:
            seen.append(sorted(p.name for p in store.root.iterdir()))
            super().advance(amount)

    assert store.publish(tiny_artifact(tmp_path / "dist"), "", Watching()) is Outcome.CREATED
    assert seen and all(len(names) == 1 and names[0].startswith(".0.1.0.") for names in seen)


def test_fetching_makes_its_directory_copies_under_a_hidden_name_and_keeps_modes(
    tmp_path: Path,
) -> None:
    store = DirStore(tmp_path / "store")
    store.publish(tiny_artifact(tmp_path / "dist"), "", Recorded())
    cache = tmp_path / "a" / "b" / "cache"
    seen: list[list[str]] = []

    class Watching(Recorded):
        def advance(self, amount: int) -> None:
            seen.append(sorted(p.name for p in cache.iterdir()))
            super().advance(amount)

    fetched = store.fetch("0.1.0", cache, Watching())
    assert seen and all(len(names) == 1 and names[0].startswith(".0.1.0.") for names in seen)
    assert fetched.stat().st_mode & 0o777 == 0o755
    with pytest.raises(KeyboardInterrupt):
        store.fetch("0.1.0", tmp_path / "other", Recorded(fail_after=1))
    assert list((tmp_path / "other").iterdir()) == [], "an interrupted fetch leaves nothing"


def test_incomplete_and_hidden_directories_never_hide_a_complete_one(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "store")
    store.publish(tiny_artifact(tmp_path / "dist"), "", Recorded())
    for number in range(12):
        (store.root / f"0.0.{number}").mkdir()  # no SHA256SUMS yet
        (store.root / f".0.0.{number}.staging").mkdir()
    assert [r.version for r in store.releases()] == ["0.1.0"]


def test_a_directory_store_path_may_hold_a_colon(tmp_path: Path) -> None:
    store = open_store(f"dir:{tmp_path}/a:b")
    assert isinstance(store, DirStore) and store.root == tmp_path / "a:b"


def test_a_github_spec_reaches_that_repository_with_what_it_is_given(tmp_path: Path) -> None:
    with serving(token=TOKEN) as github:
        store = open_store(
            "github:helionyx/helionyx", token=TOKEN, api_url=github.api_url, cache=tmp_path / "c"
        )
        assert store.publish(tiny_artifact(tmp_path / "dist"), "", Recorded()) is Outcome.CREATED
        # A SHA reads the list, keeping each manifest in the cache it was given.
        assert store.find(COMMIT[:12]).version == "0.1.0"
    assert len(list((tmp_path / "c").rglob("*-*"))) == 1, "one manifest, kept"

"""The data contract read from the source being released."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from release.artifacts.artifact import Manifest, contract_of
from release.artifacts.contract import EVENTS, PROJECTIONS, describe, read_contract
from release.errors import BuildError

REPO = Path(__file__).resolve().parents[3]


def source(tmp_path: Path) -> Path:
    for relative in (EVENTS, PROJECTIONS):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, tmp_path / relative)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_this_trees_contract_is_read_without_running_it(tmp_path: Path) -> None:
    contract = read_contract(source(tmp_path))
    assert contract["projections"] == 1
    assert contract["events"]["MessageIngested"] == {"reads": 1, "writes": 1}
    assert set(contract["events"]) == {
        "MessageIngested",
        "TodoCaptured",
        "TodoCompleted",
        "NoteCaptured",
    }


def test_a_bumped_schema_and_a_new_event_version_show(tmp_path: Path) -> None:
    tree = source(tmp_path)
    edit(tree / PROJECTIONS, "SCHEMA_VERSION = 1", "SCHEMA_VERSION = 2")
    edit(tree / EVENTS, "    NOTE_CAPTURED: 1,", "    NOTE_CAPTURED: 2,")
    contract = read_contract(tree)
    assert contract["projections"] == 2
    assert contract["events"]["NoteCaptured"] == {"reads": 2, "writes": 2}


def test_a_reader_ahead_of_its_writer_is_recorded(tmp_path: Path) -> None:
    tree = source(tmp_path)
    with (tree / EVENTS).open("a") as handle:
        handle.write("\nREADABLE_SCHEMA_VERSIONS = {**SCHEMA_VERSIONS}\n")
    edit(
        tree / EVENTS,
        "READABLE_SCHEMA_VERSIONS = {**SCHEMA_VERSIONS}",
        "READABLE_SCHEMA_VERSIONS = {NOTE_CAPTURED: 2}",
    )
    assert read_contract(tree)["events"]["NoteCaptured"] == {"reads": 2, "writes": 1}
    assert read_contract(tree)["events"]["TodoCaptured"] == {"reads": 1, "writes": 1}


def test_a_tree_without_the_declarations_cannot_be_built(tmp_path: Path) -> None:
    tree = source(tmp_path)
    edit(tree / PROJECTIONS, "SCHEMA_VERSION = 1", "SCHEMA = 1")
    with pytest.raises(BuildError, match="cannot read the data contract"):
        read_contract(tree)


def test_an_artifact_from_before_contracts_reads_as_the_legacy_one() -> None:
    manifest = Manifest(1, "helionyx", "0.1.0", "v0.1.0", "a" * 40, "t", ">=3.11", "p", ())
    assert "data_contract" not in manifest.to_json(), "its bytes stay as they were"
    assert describe(contract_of(manifest)) == "projections v1; events as of version 1"

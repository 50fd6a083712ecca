"""SHA256SUMS: one reader and writer for artifacts, releases and backups."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.agent import checksums
from release.agent.errors import MalformedSums
from release.agent.protocol import SUMS


def test_written_sums_read_back_and_match(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    checksums.write(tmp_path, ["a.txt", "sub/b.txt"])
    sums = checksums.read(tmp_path)
    assert list(sums) == ["a.txt", "sub/b.txt"]
    assert sums["a.txt"] == checksums.sha256_file(tmp_path / "a.txt")
    assert checksums.first_mismatch(tmp_path) is None


def test_the_format_is_sha256sums_own(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    checksums.write(tmp_path, ["a.txt"])
    line = (tmp_path / SUMS).read_text()
    assert line == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a.txt\n"


def test_an_altered_or_missing_file_is_named(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
    checksums.write(tmp_path, ["a.txt", "b.txt"])
    (tmp_path / "b.txt").write_text("tampered")
    assert checksums.first_mismatch(tmp_path) == "b.txt"
    (tmp_path / "a.txt").unlink()
    assert checksums.first_mismatch(tmp_path) == "a.txt"


@pytest.mark.parametrize("line", ["abc  a.txt", "f" * 64 + " a.txt", "f" * 64 + "  "])
def test_a_malformed_line_is_refused_with_its_number(line: str) -> None:
    with pytest.raises(MalformedSums, match="line 2"):
        checksums.parse("f" * 64 + "  ok.txt\n" + line + "\n")


def test_a_path_may_hold_the_separator_itself() -> None:
    digest = "0" * 64
    assert checksums.parse(f"{digest}  odd  name.txt\n") == {"odd  name.txt": digest}

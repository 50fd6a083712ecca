"""SHA256SUMS: the one reader and writer, for artifacts (operator side) and releases and
backups (host side). Lines are `<sha256 hex>  <relative path>`, as sha256sum writes them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from .errors import MalformedSums
from .protocol import SUMS


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse(text: str) -> dict[str, str]:
    """{path: sha256} from the text of a SHA256SUMS file."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise MalformedSums(number)
        sums[name] = digest
    return sums


def read(directory: Path) -> dict[str, str]:
    """{path: sha256} from `directory`/SHA256SUMS."""
    return parse((directory / SUMS).read_text(encoding="utf-8"))


def write(directory: Path, paths: Iterable[str]) -> None:
    """`directory`/SHA256SUMS over `paths` (relative to it), in the order given."""
    lines = [f"{sha256_file(directory / p)}  {p}\n" for p in paths]
    (directory / SUMS).write_text("".join(lines), encoding="utf-8")


def first_mismatch(directory: Path) -> str | None:
    """The first file under `directory` whose bytes differ from SHA256SUMS (or is missing)."""
    for name, digest in read(directory).items():
        path = directory / name
        if not path.is_file() or sha256_file(path) != digest:
            return name
    return None

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
        # Equivalent mutants (docs/TESTING.md): the block size changes memory, not the digest.
        for block in iter(lambda: handle.read(1 << 20), b""):  # pragma: no mutate
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
    # Named, not left to the locale; mutants of it live where tests run (UTF-8 locales).
    text = (directory / SUMS).read_text(encoding="utf-8")  # pragma: no mutate
    return parse(text)


def write(directory: Path, paths: Iterable[str]) -> None:
    """`directory`/SHA256SUMS over `paths` (relative to it), in the order given."""
    text = "".join(f"{sha256_file(directory / p)}  {p}\n" for p in paths)
    # Named, not left to the locale; mutants of it live where tests run (UTF-8 locales).
    (directory / SUMS).write_text(text, encoding="utf-8")  # pragma: no mutate


def first_mismatch(directory: Path, absent: Iterable[str] = ()) -> str | None:
    """The first file under `directory` whose bytes differ from SHA256SUMS, or is missing
    without being one of `absent` (files left out on purpose)."""
    left_out = set(absent)
    for name, digest in read(directory).items():
        path = directory / name
        if name in left_out and not path.exists():
            continue
        if not path.is_file() or sha256_file(path) != digest:
            return name
    return None


def present(directory: Path) -> dict[str, str]:
    """SHA256SUMS's lines for the files `directory` holds (a release may lack some wheels)."""
    return {
        name: digest for name, digest in read(directory).items() if (directory / name).is_file()
    }

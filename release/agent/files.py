"""Durable file-system steps: directory fsync, atomic symlink flips and replacements,
append-only writes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flip(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a new symlink renamed over the old one."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)
    fsync_dir(link.parent)


def append_durably(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Append `data` in one write and fsync it; the file is never rewritten."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_whole(path: Path, text: str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write `text` to a staged file and rename it over `path`: a reader sees old or new
    (`durable=False`: not synced to disk, for a word only a running process reads at once)."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    staged.chmod(mode)
    os.replace(staged, path)
    if durable:
        fsync_dir(path.parent)

"""Where an environment's pieces live on the host, and what a command works with."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .protocol import (
    CURRENT,
    DEPLOY_LOG,
    HOLDER_FILE,
    LOCK_DIR,
    MANIFEST,
    PREVIOUS,
    RELEASES_DIR,
    HolderRecord,
    LockHolder,
    Progress,
    Target,
)
from .system import System


@dataclass(frozen=True)
class Layout:
    """One environment's directories, links, unit and port on this host."""

    env: str
    base: Path
    data_dir: Path
    config_file: Path
    unit: str
    port: int

    @classmethod
    def of(cls, target: Target) -> Layout:
        """From the target every request carries."""
        return cls(
            env=target["env"],
            base=Path(target["base_dir"]),
            data_dir=Path(target["data_dir"]),
            config_file=Path(target["config_file"]),
            unit=target["unit"],
            port=int(target["port"]),
        )

    @property
    def releases(self) -> Path:
        return self.base / RELEASES_DIR

    @property
    def current(self) -> Path:
        return self.base / CURRENT

    @property
    def previous(self) -> Path:
        return self.base / PREVIOUS

    @property
    def log(self) -> Path:
        return self.base / DEPLOY_LOG

    @property
    def lock(self) -> Path:
        return self.base / LOCK_DIR

    def link_target(self, link: Path) -> str | None:
        """The release SHA a link (current/previous) points at."""
        try:
            return Path(str(link.readlink())).name
        except OSError:
            return None

    def is_complete(self, sha: str | None) -> bool:
        """Whether releases/<sha> is a finished release (renamed into place whole)."""
        return bool(sha) and (self.releases / str(sha) / MANIFEST).is_file()

    def holder(self) -> LockHolder | None:
        """The lock holder, if the env is locked."""
        if not self.lock.is_dir():
            return None
        try:
            return cast(HolderRecord, json.loads((self.lock / HOLDER_FILE).read_text()))
        except (OSError, ValueError):
            # Only a lock taken before locks were renamed into place can lack its holder.
            return {"holder": "unknown", "incomplete": True}

    def release_dirs(self) -> list[Path]:
        """Release directories (never the hidden partial ones)."""
        if not self.releases.is_dir():
            return []
        return [p for p in self.releases.iterdir() if not p.name.startswith(".") and p.is_dir()]


def _unreported(progress: Progress) -> None:
    """Progress nobody is listening to."""


@dataclass(frozen=True)
class Context:
    """What every command handler gets: the environment's layout and the machine."""

    layout: Layout
    system: System
    #: Tells the operator how far a long step has got (never fails: the step goes on).
    report: Callable[[Progress], None] = _unreported

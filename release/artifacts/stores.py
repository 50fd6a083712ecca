"""Which store a `--store` spec names: `dir:PATH` or `github:OWNER/REPO` (the one place that
knows every kind, so no store module imports another; GitHub's only when named)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from release.artifacts.store import DirStore, Store
from release.errors import UsageError

#: Where `make artifact` and `make release` put builds, and what deploys read by default.
DEFAULT_STORE = "dir:dist/releases"


def open_store(
    spec: str,
    *,
    token: str | None = None,
    api_url: str | None = None,
    notify: Callable[[str], None] = lambda _: None,
    cache: Path | None = None,
) -> Store:
    """A store from `dir:PATH` or `github:OWNER/REPO`; `notify` hears about waits and moves,
    `cache` keeps what a remote store can vouch for between runs."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UsageError(
            f"store {spec!r} is not SCHEME:WHERE", hint="use dir:PATH or github:OWNER/REPO"
        )
    if scheme == "dir":
        return DirStore(Path(rest))
    if scheme == "github":
        # httpx alone costs 0.1 s of start-up, which a `dir:` store never needs.
        from release.artifacts.github import GitHubStore  # noqa: PLC0415

        return GitHubStore.from_spec(rest, token=token, api_url=api_url, notify=notify, cache=cache)
    raise UsageError(f"unknown store scheme {scheme!r}", hint="use dir:PATH or github:OWNER/REPO")

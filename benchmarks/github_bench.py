"""`make bench-github`: what one version and the list cost against a repository with a history.

Seeds the GitHub stand-in (tests/release/artifacts/github_standin.py, on loopback) with N releases
as this tool publishes them, then counts API requests — lookups, and asset downloads through the
API (each then redirected to the storage host) — and times: fetching one version by version and
by tag, resolving a SHA with a cold and a warm manifest cache, and the list, cold and warm.
Figures go to stdout and benchmarks/results/github-latest.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from release.artifacts.github import GitHubStore
from release.progress import NoProgress
from tests.release.artifacts.github_standin import GitHubStandIn, serving
from tests.release.artifacts.githubkit import commit_of, lookups, seed_ours

RESULTS = Path(__file__).parent / "results" / "github-latest.json"
TOKEN = "ghs_benchmark"  # noqa: S105 - the stand-in's, on loopback


@dataclass(frozen=True)
class Row:
    """One measured operation."""

    operation: str
    lookups: int  # API requests other than asset downloads
    downloads: int  # asset downloads through the API (each then redirected to storage)
    seconds: float


def main(argv: list[str]) -> int:
    """Run the measurements and print a table."""
    count = int(argv[0]) if argv else 300
    rows: list[Row] = []
    with serving(token=TOKEN) as github, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for number in range(count):
            seed_ours(github, scratch / "seed", f"0.{number}.0", commit_of(number))
        cache = scratch / "cache"

        def store() -> GitHubStore:
            return GitHubStore("helionyx", "helionyx", TOKEN, api_url=github.api_url, cache=cache)

        def measure(operation: str, action: Callable[[], object]) -> None:
            github.requests.clear()
            started = time.monotonic()
            action()
            seconds = round(time.monotonic() - started, 3)
            total = github.api_requests()
            rows.append(Row(operation, lookups(github), total - lookups(github), seconds))

        middle = count // 2
        measure(
            f"verify 0.{middle}.0 (by version)",
            lambda: store().fetch(f"0.{middle}.0", scratch / "a", NoProgress()),
        )
        measure(
            f"verify v0.{middle + 1}.0 (by tag)",
            lambda: store().fetch(f"v0.{middle + 1}.0", scratch / "b", NoProgress()),
        )
        sha = commit_of(middle)[:12]
        measure(f"resolve {sha} (a SHA), cache cold", lambda: store().find(sha))
        measure(f"resolve {sha} (a SHA), cache warm", lambda: store().find(sha))
        _clear(cache)
        measure(f"list {count} releases, cache cold", lambda: store().releases())
        measure(f"list {count} releases, cache warm", lambda: store().releases())
        _report(github, count, rows)
    return 0


def _clear(cache: Path) -> None:
    for entry in cache.iterdir():
        entry.unlink()


def _report(github: GitHubStandIn, count: int, rows: list[Row]) -> None:
    print(f"GitHub store against the stand-in, {count} releases ({len(github.blobs)} assets)")
    print(f"{'operation':<40} {'lookups':>8} {'downloads':>10} {'seconds':>8}")
    for row in rows:
        print(f"{row.operation:<40} {row.lookups:>8} {row.downloads:>10} {row.seconds:>8.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    taken = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    RESULTS.write_text(
        json.dumps({"taken": taken, "releases": count, "rows": [asdict(r) for r in rows]}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

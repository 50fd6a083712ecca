"""The hosts of one env, worked on at once: one context per host, the answers in host order.

An env may name several hosts (`Environment.hosts`). Every per-host step in this package acts
on one host (`Environment.at`); this module runs such a step on all of them concurrently with
the standard library's thread pool over the existing `Remote`/`Host` seam (each host its own
SSH connection, its own deadlines), and gives back what each host answered or why it could not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from release.agent.protocol import Progress
from release.errors import ReleaseError
from release.hosts.context import Context, Reporter

T = TypeVar("T")
X = TypeVar("X")

#: Hosts worked on at once; beyond it they wait their turn (each holds an SSH connection).
CONCURRENCY = 64


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What one host gave: a value, or the error that says why not."""

    host: str
    value: T | None = None
    error: ReleaseError | None = None

    @property
    def ok(self) -> bool:
        """Whether the host answered."""
        return self.error is None


def contexts(ctx: Context) -> list[Context]:
    """One context per host of the context's env, in the env's order (with several hosts,
    each reporting under its host's name)."""
    if not ctx.env.several:
        return [ctx]
    return [
        replace(ctx, env=ctx.env.at(host), reporter=HostReporter(ctx.reporter, host))
        for host in ctx.env.hosts
    ]


def each(ctx: Context, work: Callable[[Context], T]) -> list[Answer[T]]:
    """`work` on every host of the env at once, each with a context of its own; the answers
    in the env's host order. A host that raises a ReleaseError hides none of the others."""
    return concurrently(contexts(ctx), lambda on: on.env.host, work)


def concurrently(
    items: Sequence[X], host: Callable[[X], str], work: Callable[[X], T]
) -> list[Answer[T]]:
    """`work` on each item (one per host) at once; the answers in the items' order."""

    def one(item: X) -> Answer[T]:
        try:
            return Answer(host(item), value=work(item))
        except ReleaseError as exc:
            return Answer(host(item), error=exc)

    if len(items) == 1:
        return [one(items[0])]
    with ThreadPoolExecutor(max_workers=min(len(items), CONCURRENCY)) as pool:
        return list(pool.map(one, items))


def failures(answers: list[Answer[T]]) -> str | None:
    """What went wrong, one clause per host that failed (None: every host answered)."""
    failed = [f"{a.host}: {a.error.message if a.error else ''}" for a in answers if not a.ok]
    return "; ".join(failed) or None


def values(answers: list[Answer[T]], what: str) -> list[T]:
    """Every host's value, or the first host's error standing for all that failed (its kind,
    hint and exit code), its message naming each: `<what> failed on node2: …; node3: …`."""
    failed = failures(answers)
    if failed is not None:
        first = next(a.error for a in answers if a.error is not None)
        assert first is not None
        first.message, first.host = f"{what} failed on {failed}", None
        raise first
    return [a.value for a in answers if a.value is not None]


class HostReporter:
    """A reporter whose every line names the host it is about (several hosts report at once)."""

    def __init__(self, reporter: Reporter, host: str) -> None:
        self._reporter = reporter
        self._host = host

    def headline(self, message: str) -> None:
        """The operation's first line (said once, for the env, by the caller)."""

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        """A step finished on this host."""
        self._reporter.step(f"{name} {self._host}", seconds, detail)

    def note(self, message: str) -> None:
        """Something the operator should know about this host."""
        self._reporter.note(f"{self._host}: {message}")

    def progress(self, progress: Progress) -> None:
        """How far a long step has got (the watch): one host's countdown stands for all."""
        self._reporter.progress(progress)

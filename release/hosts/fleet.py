"""The hosts of one env, worked on at once: one context per host, the answers in host order.

An env may name several hosts (`Environment.hosts`). Every per-host step in this package acts
on one host (`Environment.at`); this module runs such a step on all of them concurrently with
the standard library's thread pool over the existing `Remote`/`Host` seam (each host its own
SSH connection, its own deadlines), and gives back what each host answered or why it could not.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from release.errors import ReleaseError
from release.hosts.context import Context

T = TypeVar("T")

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
    """One context per host of the context's env, in the env's order."""
    return [ctx.on(ctx.env.at(host)) for host in ctx.env.hosts]


def each(ctx: Context, work: Callable[[Context], T]) -> list[Answer[T]]:
    """`work` on every host of the env at once, each with a context of its own; the answers
    in the env's host order. A host that raises a ReleaseError hides none of the others."""

    def one(on: Context) -> Answer[T]:
        try:
            return Answer(on.env.host, value=work(on))
        except ReleaseError as exc:
            return Answer(on.env.host, error=exc)

    per_host = contexts(ctx)
    if len(per_host) == 1:
        return [one(per_host[0])]
    with ThreadPoolExecutor(max_workers=min(len(per_host), CONCURRENCY)) as pool:
        return list(pool.map(one, per_host))

"""`python -m release`: the one place that prints results and maps errors to exit codes."""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Sequence

from release.artifacts import releasing
from release.cli.commands import Run
from release.cli.parser import parser
from release.clock import Clock, SystemClock
from release.errors import ReleaseError
from release.hosts.context import RemoteFactory
from release.hosts.environments import Environment, load
from release.hosts.remote import SshRemote
from release.progress import NoProgress, Progressable, TransferProgress


def main(
    argv: Sequence[str] | None = None,
    *,
    remote_factory: RemoteFactory = SshRemote,
    clock: Clock | None = None,
    environments: Callable[[str], Environment] | None = None,
) -> int:
    """Entry point; tests pass their own transport, clock and envs, the CLI uses SSH."""
    args = parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A cron job or LC_ALL=C may give an ASCII stdout; a release name must not end the run.
        sys.stdout.reconfigure(errors="backslashreplace")
    progress: Progressable = TransferProgress() if sys.stderr.isatty() else NoProgress()
    root = args.repo.resolve()
    run = Run(
        releasing.Workspace(root),
        progress,
        remote_factory,
        clock or SystemClock(),
        environments or functools.partial(load, root),
    )
    try:
        code: int = args.handler(run, args)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.details:
            print("last journal lines:", file=sys.stderr)
            for line in exc.details:
                print(f"  {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        env = getattr(args, "env", None)
        print(
            "interrupted" + (f"; make status ENV={env} shows where it stands" if env else ""),
            file=sys.stderr,
        )
        return 130
    return code

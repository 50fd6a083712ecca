"""`python -m release …` in-process against the in-process host, as a test drives it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from release.cli import main
from tests.release.inprocess import PretendHost


@dataclass(frozen=True)
class Ran:
    """A finished `python -m release …`."""

    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line (asserting there is exactly one and no traceback)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: ") and "Traceback" not in self.err
        return lines[0]


@dataclass
class Cli:
    host: PretendHost
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Ran:
        self.capsys.readouterr()
        code = main(
            ["--repo", str(self.host.workspace), *argv],
            remote_factory=self.host.remote,
            environments=self.host.peer,
        )
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)

    @property
    def store(self) -> str:
        return f"dir:{self.host.store.root}"

    def deploy(self, env: str, version: str, *extra: str) -> Ran:
        return self("deploy", "--env", env, "--version", version, "--store", self.store, *extra)

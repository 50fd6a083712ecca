"""The hosts an artifact serves: CPython versions, machines and a glibc floor.

Declared once, in the project's `pyproject.toml` (`[tool.helionyx.artifact]`), read from the
commit being built, and written into its manifest. The same rules decide which wheels a build
downloads, whether a host can run a release (`refusal`) and which wheels travel to it (`unused`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from release.agent.protocol import HostPlatform, TargetsRecord
from release.errors import ArtifactError, BuildError

#: Where the targets are declared, in the exported commit.
CONFIG = "pyproject.toml"
#: The interpreter the host agent itself needs (below it nothing can run there).
AGENT_FLOOR = (3, 11)
_PYTHON = re.compile(r"^3\.(\d+)$")
_MACHINE = re.compile(r"^[a-z0-9_]+$")
_GLIBC = re.compile(r"^2\.(\d+)$")
#: manylinux's older names for the glibc versions they stand for (PEP 600).
_LEGACY_NAMES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


@dataclass(frozen=True)
class Targets:
    """Every CPython version on every machine, each with glibc `glibc` or newer."""

    pythons: tuple[str, ...]
    machines: tuple[str, ...]
    glibc: str

    @classmethod
    def from_record(cls, record: TargetsRecord, *, where: str) -> Targets:
        """Checked values from a manifest's or a configuration's record."""
        pythons = record.get("pythons")
        machines = record.get("machines")
        glibc = record.get("glibc")
        if not (isinstance(pythons, list) and pythons and all(isinstance(p, str) for p in pythons)):
            raise ArtifactError(f'{where}: pythons must be a non-empty list like ["3.11"]')
        if not (
            isinstance(machines, list) and machines and all(isinstance(m, str) for m in machines)
        ):
            raise ArtifactError(f'{where}: machines must be a non-empty list like ["x86_64"]')
        for python in pythons:
            found = _PYTHON.match(python)
            if not found or int(found[1]) < AGENT_FLOOR[1]:
                raise ArtifactError(f"{where}: python {python!r} is not a CPython 3.11 or newer")
        for machine in machines:
            if not _MACHINE.match(machine):
                raise ArtifactError(f"{where}: {machine!r} is not a machine name like x86_64")
        if not (isinstance(glibc, str) and _GLIBC.match(glibc)):
            raise ArtifactError(f'{where}: glibc must be a version like "2.31"')
        return cls(tuple(pythons), tuple(machines), glibc)

    def record(self) -> TargetsRecord:
        """As the manifest lists it."""
        return {"pythons": list(self.pythons), "machines": list(self.machines), "glibc": self.glibc}

    def __str__(self) -> str:
        return (
            f"CPython {', '.join(self.pythons)} on {', '.join(self.machines)}, glibc {self.glibc}+"
        )

    @property
    def short(self) -> str:
        """One table cell: `3.11,3.12,3.13 x86_64,aarch64 glibc 2.31+`."""
        return f"{','.join(self.pythons)} {','.join(self.machines)} glibc {self.glibc}+"

    @property
    def platform(self) -> str:
        """The manifest's one-line `platform` (kept for tools that read only that)."""
        abis = ",".join(f"cp{p.replace('.', '')}" for p in self.pythons)
        return f"{abis}-manylinux_{self.glibc.replace('.', '_')}-{','.join(self.machines)}"

    def pip_args(self, python: str, machine: str) -> list[str]:
        """`pip download` options selecting the wheels one python on one machine needs."""
        abi = f"cp{python.replace('.', '')}"
        accepted = platforms(machine, _minor(self.glibc))
        tags = [arg for tag in accepted for arg in ("--platform", tag)]
        selected = ["--python-version", python, "--implementation", "cp", "--abi", abi]
        return ["--only-binary=:all:", *selected, *tags]

    def refusal(self, host: HostPlatform, offering: str = "the artifact offers") -> str | None:
        """Why a host cannot run a release built for these targets (None: it can)."""
        version = ".".join(host["python"].split(".")[:2])
        offered = f"{offering} {self}"
        has = describe(host)
        if host["implementation"] != "cpython" or version not in self.pythons:
            return f"the host has {has}; {offered}"
        if host["machine"] not in self.machines:
            return f"the host is {host['machine']} ({has}); {offered}"
        if host["glibc"] is None or _minor(host["glibc"]) < _minor(self.glibc):
            return f"the host has {has}; {offered}"
        return None

    def unused(self, host: HostPlatform, paths: list[str]) -> list[str]:
        """The wheels among `paths` that the host cannot install (they need not travel)."""
        accepted = _host_tags(host)
        unused = []
        for path in paths:
            if not path.endswith(".whl") or "/" not in path:
                continue  # the service's own wheel (pure Python) always travels
            try:
                tags = parse_wheel_filename(path.rsplit("/", 1)[1])[3]
            except InvalidWheelFilename:
                continue
            if accepted.isdisjoint(tags):
                unused.append(path)
        return unused


#: What artifacts built before targets were declared hold: the first test node's Debian 12.
LEGACY = Targets(("3.11",), ("x86_64",), "2.36")
#: Their manifest's `platform`, kept byte for byte so such a commit rebuilds identically.
LEGACY_PLATFORM = "cp3.11-manylinux_2_36_x86_64"


def describe(host: HostPlatform) -> str:
    """`CPython 3.11.2 on x86_64 with glibc 2.36`, as a message names a host."""
    name = "CPython" if host["implementation"] == "cpython" else host["implementation"]
    libc = f"glibc {host['glibc']}" if host["glibc"] else "no glibc"
    return f"{name} {host['python']} on {host['machine']} with {libc}"


def read_targets(source: Path) -> Targets | None:
    """The targets a source tree declares (None: it declares none, and gets LEGACY's)."""
    path = source / CONFIG
    try:
        config: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read {CONFIG}: {exc}") from None
    table = config.get("tool", {}).get("helionyx", {}).get("artifact")
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) - {"pythons", "machines", "glibc"}:
        raise BuildError(f"{CONFIG} [tool.helionyx.artifact] takes pythons, machines and glibc")
    try:
        return Targets.from_record(table, where=f"{CONFIG} [tool.helionyx.artifact]")  # type: ignore[arg-type]
    except ArtifactError as exc:
        raise BuildError(exc.message) from None


def platforms(machine: str, glibc_minor: int) -> list[str]:
    """Every manylinux tag a machine with that glibc accepts, newest first (pip does not
    expand them by itself)."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 4, -1)]
    return tags + [
        f"{name}_{machine}" for minor, name in _LEGACY_NAMES.items() if minor <= glibc_minor
    ]


def _minor(glibc: str) -> int:
    found = _GLIBC.match(glibc)
    return int(found[1]) if found else 0


def _host_tags(host: HostPlatform) -> set[Tag]:
    major, minor = (int(part) for part in host["python"].split(".")[:2])
    accepted = platforms(host["machine"], _minor(host["glibc"] or ""))
    abi = f"cp{major}{minor}"
    return {
        *cpython_tags((major, minor), abis=[abi], platforms=accepted),
        *compatible_tags((major, minor), interpreter=abi, platforms=accepted),
    }

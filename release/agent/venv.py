"""A release's virtualenv, offline: from the wheelhouse with the lock's hashes, or with the
dependencies linked from a donor release built from the same lock."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
from pathlib import Path

from .system import System

#: What installs run with: nothing of the agent's own environment leaks into a release.
OFFLINE = ("--offline", "--no-cache", "--quiet")
BUILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def extract_uv(directory: Path, donor: Path | None) -> Path | None:
    """The uv binary from the artifact's tools/ wheel (linked from the donor when the same)."""
    tools = directory / "tools"
    machine = platform.machine()
    # An artifact carries one uv wheel per machine; the operator sends only this host's.
    wheels = (
        sorted(w for w in tools.glob("uv-*.whl") if machine in w.name) if tools.is_dir() else []
    )
    if not wheels:
        return None
    target = tools / "uv"
    if donor is not None and (donor / "tools" / "uv").is_file():
        # Unzipping the 40 MB binary costs half a second; the donor's came from the same wheel.
        donor_wheel = donor / "tools" / wheels[0].name
        if donor_wheel.is_file() and donor_wheel.samefile(wheels[0]):
            os.link(donor / "tools" / "uv", target)
            return target
    import zipfile  # noqa: PLC0415 - only builds need it; every call pays for module imports

    with zipfile.ZipFile(wheels[0]) as archive:
        member = next((n for n in archive.namelist() if re.search(r"\.data/scripts/uv$", n)), None)
        if member is None:
            return None
        target.write_bytes(archive.read(member))
    target.chmod(0o755)
    return target


def _uv_install(uv: Path, venv: Path) -> list[str]:
    python = str(venv / "bin" / "python")
    offline = ["--offline", "--no-index", "--no-cache", "--quiet"]
    return [str(uv), "pip", "install", "--python", python, *offline]


def build(system: System, uv: Path | None, venv: Path, wheel: Path, release: Path) -> None:
    """A new venv: dependencies from the wheelhouse with the lock's hashes, then the service."""
    wheelhouse = str(release / "wheelhouse")
    lock = str(release / "requirements.lock")
    if uv is not None:
        # Relocatable: scripts find their interpreter relative to themselves, so the venv
        # works after releases/.<sha>.partial is renamed and can be linked into later releases.
        system.run(
            [str(uv), "venv", "--relocatable", "--python", base_interpreter(), *OFFLINE, str(venv)],
            env=BUILD_ENV,
            timeout=600,
        )
        install = [*_uv_install(uv, venv), "--compile-bytecode"]
    else:  # an artifact without tools/: pip, slower, same guarantees
        system.run([base_interpreter(), "-m", "venv", str(venv)], env=BUILD_ENV, timeout=600)
        pip = ["--quiet", "--no-index", "--disable-pip-version-check", "--no-cache-dir"]
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", *pip]
    # Dependencies only from the wheelhouse and only with the lock's hashes; the service wheel
    # (which has no hash in the lock) alone, without dependencies.
    system.run(
        [*install, "--find-links", wheelhouse, "--require-hashes", "-r", lock],
        env=BUILD_ENV,
        timeout=600,
    )
    system.run([*install, "--no-deps", str(wheel)], env=BUILD_ENV, timeout=600)
    if uv is None:
        compile_all = [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")]
        system.run(compile_all, env=BUILD_ENV, timeout=600)


def _pyvenv(venv: Path) -> dict[str, str]:
    values = {}
    with contextlib.suppress(OSError):
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpreter_of(venv: Path) -> tuple[str | None, bool]:
    """The Python (X.Y) a venv was built with, and whether its `bin/python` still runs that
    one (a venv that does not say which it was built with counts as runnable)."""
    config = _pyvenv(venv)
    # uv writes version_info; the standard library's venv writes version.
    built = config.get("version_info") or config.get("version", "")
    version = ".".join(built.split(".")[:2]) or None
    if version is None:
        return None, True
    runs = Path(os.path.realpath(venv / "bin" / "python"))
    return version, runs.name == f"python{version}" and runs.is_file()


def base_interpreter() -> str:
    """The versioned interpreter a new venv names (python3.11, not python3), so that a later
    upgrade of the host's python3 leaves the release on the interpreter it was built for."""
    return os.path.realpath(sys.executable)


def same_dependencies(donor: Path, release: Path) -> bool:
    """Whether the donor's venv holds exactly what this release's lock would install."""
    config = _pyvenv(donor / "venv")
    return (
        config.get("relocatable") == "true"
        and config.get("version_info") == ".".join(map(str, sys.version_info[:3]))
        and (donor / "requirements.lock").read_bytes()
        == (release / "requirements.lock").read_bytes()
    )


def link_tree(source: Path, target: Path, skip: set[Path]) -> None:
    """Recreate `source` under `target` with hard links (files are never written in place)."""
    for root, dirs, files in os.walk(source):
        here = Path(root)
        (target / here.relative_to(source)).mkdir(parents=True, exist_ok=True)
        for name in list(dirs):
            if here / name in skip or (here / name).is_symlink():
                dirs.remove(name)
            if (here / name).is_symlink():  # os.walk lists links to directories as dirs
                (target / here.relative_to(source) / name).symlink_to((here / name).readlink())
        for name in files:
            path = here / name
            if path in skip:
                continue
            destination = target / path.relative_to(source)
            if path.is_symlink():
                destination.symlink_to(path.readlink())
            else:
                os.link(path, destination)


def clone_dependencies(source: Path, venv: Path, name: str) -> None:
    """Link the donor venv into the new release, without the donor's own service package."""
    site = next(source.glob("lib/python*/site-packages"))
    normalized = name.replace("-", "_")
    skip = {
        p for p in site.iterdir() if p.name == normalized or p.name.startswith(f"{normalized}-")
    }
    for info in [p for p in skip if p.name.endswith(".dist-info")]:
        # The donor's console scripts of the service: uv writes the new ones.
        for line in (info / "RECORD").read_text().splitlines():
            path = (site / line.split(",")[0]).resolve()
            if path.parent == (source / "bin").resolve():
                skip.add(source / "bin" / path.name)
    link_tree(source, venv, skip)


def install_service(system: System, uv: Path, venv: Path, wheel: Path, name: str) -> None:
    """Only the service wheel, into a venv that already holds its dependencies."""
    system.run([*_uv_install(uv, venv), "--no-deps", str(wheel)], env=BUILD_ENV, timeout=600)
    site = next(venv.glob("lib/python*/site-packages"))
    # Bytecode for the new package only: the linked dependencies carry theirs.
    package = site / name.replace("-", "_")
    compile_new = [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(package)]
    system.run(compile_new, env=BUILD_ENV, timeout=600)

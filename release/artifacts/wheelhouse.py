"""An artifact's wheelhouse: every wheel its lock pins, for every target, fetched once.

pip downloads each target's wheels (side by side, each into its own directory: two pips must
not write one file), then they are merged: a wheel two targets share is one file, whose bytes
the lock's hash fixes. A wheelhouse is kept in a cache keyed by the lock and the targets, so the
next build of the same lock copies it instead of asking the index again; every cached wheel is
checked against the lock's hashes before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from release.agent.checksums import sha256_file
from release.artifacts.targets import Targets
from release.errors import BuildError

_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
#: Written last into a cached wheelhouse: one without it was interrupted and is fetched again.
_COMPLETE = ".complete"


def run_step(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """One program of a build; BuildError with its last line of output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BuildError(f"{what} failed: {detail[-1] if detail else 'no output'}")


def fill(lock: Path, wheelhouse: Path, python: str, targets: Targets, cache: Path) -> None:
    """Create `wheelhouse` with every wheel `lock` needs on every target."""
    wheelhouse.mkdir()
    key = hashlib.sha256(lock.read_bytes() + json.dumps(targets.record()).encode()).hexdigest()
    kept = cache / key
    allowed = set(_HASH.findall(lock.read_text(encoding="utf-8")))
    if (kept / _COMPLETE).is_file() and _copy_checked(kept, wheelhouse, allowed):
        return
    _download(lock, wheelhouse, python, targets)
    try:
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        for wheel in wheelhouse.iterdir():
            shutil.copyfile(wheel, kept / wheel.name)
        (kept / _COMPLETE).write_text("")
    except OSError:
        shutil.rmtree(kept, ignore_errors=True)  # a cache that cannot be written is no cache


def _copy_checked(kept: Path, wheelhouse: Path, allowed: set[str]) -> bool:
    """Copy a cached wheelhouse if every wheel in it is one the lock pins (else fetch anew)."""
    wheels = [p for p in kept.iterdir() if p.name != _COMPLETE]
    if not all(sha256_file(wheel) in allowed for wheel in wheels):
        return False
    for wheel in wheels:
        shutil.copyfile(wheel, wheelhouse / wheel.name)
    return True


def _download(lock: Path, wheelhouse: Path, python: str, targets: Targets) -> None:
    jobs = [(version, machine) for version in targets.pythons for machine in targets.machines]
    with tempfile.TemporaryDirectory(prefix=".wheels.", dir=wheelhouse.parent) as tmp:

        def fetch(job: tuple[str, str]) -> Path:
            version, machine = job
            dest = Path(tmp) / f"{version}-{machine}"
            command = [python, "-m", "pip", "download", "--quiet", "--no-deps"]
            command += ["--require-hashes", "--disable-pip-version-check"]
            command += [*targets.pip_args(version, machine), "--dest", str(dest)]
            what = f"downloading {wheelhouse.name}/ for CPython {version} on {machine}"
            run_step([*command, "--requirement", str(lock)], what)
            return dest

        with ThreadPoolExecutor(max_workers=min(len(jobs), 4)) as pool:
            fetched = list(pool.map(fetch, jobs))
        for dest in fetched:
            for wheel in sorted(dest.iterdir()):
                if not (wheelhouse / wheel.name).exists():
                    os.replace(wheel, wheelhouse / wheel.name)

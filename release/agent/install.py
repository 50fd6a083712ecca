"""Building a release on the host: `prepare` (clear leftovers, pick a donor) and `install`
(unpack into releases/.<sha>.partial, check every file, venv offline, smoke check, rename)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from . import checksums, venv
from .errors import AgentError
from .files import fsync_dir
from .layout import Context, Layout
from .protocol import (
    BUILD_LOCK,
    MANIFEST,
    InstallAnswer,
    InstallRequest,
    PrepareAnswer,
    PrepareRequest,
)
from .settings import read_env_file


@contextlib.contextmanager
def build_lock(layout: Layout) -> Iterator[None]:
    """Serialise work on releases/ between agents.

    An operator killed mid-build leaves its agent running on the host (nothing ends it with the
    SSH session); the next deploy's agent waits here for it instead of building over it.
    """
    import fcntl  # noqa: PLC0415 - POSIX only, like the host

    layout.base.mkdir(parents=True, exist_ok=True)
    with (layout.base / BUILD_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prepare(ctx: Context, req: PrepareRequest) -> PrepareAnswer:
    """Remove leftovers of interrupted deploys; say whether the release is already complete."""
    layout = ctx.layout
    with build_lock(layout):
        layout.releases.mkdir(parents=True, exist_ok=True)
        removed = []
        for leftover in layout.releases.glob(".*"):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
            removed.append(leftover.name)
        for stale in layout.base.glob(f".{layout.current.name}.*"):
            stale.unlink()
            removed.append(stale.name)
        donor = _donor(layout, req["sha"])
        release = layout.releases / req["sha"]
        return {
            # One whose interpreter the host has since lost is built again.
            "complete": layout.is_complete(req["sha"]) and venv.interpreter_of(release / "venv")[1],
            "removed": removed,
            "donor": donor.name if donor else None,
            "donor_sums": checksums.present(donor) if donor else {},
        }


def _donor(layout: Layout, sha: str) -> Path | None:
    """A complete release whose identical files a new release may share (current first)."""
    current = layout.link_target(layout.current)
    candidates = sorted(
        (p for p in layout.release_dirs() if p.name != sha),
        key=lambda p: (p.name != current, -p.stat().st_mtime),
    )
    return next((p for p in candidates if (p / MANIFEST).is_file()), None)


def install(ctx: Context, req: InstallRequest) -> InstallAnswer:
    """Unpack an uploaded artifact into releases/.<sha>.partial, build its venv offline, smoke
    check it, and rename it to releases/<sha>. Nothing outside the partial dir is touched.

    Files the operator did not send (`reuse`) are hard-linked from the donor release, and when
    the donor was built from the same lock its dependencies are linked rather than reinstalled;
    every file is checked against SHA256SUMS either way.
    """
    layout = ctx.layout
    sha = req["sha"]
    archive = Path(req["archive"])
    partial = layout.releases / f".{sha}.partial"
    with build_lock(layout):
        try:
            return _install(ctx, req, archive, partial)
        except BaseException:
            # Nothing half-made stays behind; the next deploy starts clean either way.
            shutil.rmtree(partial, ignore_errors=True)
            archive.unlink(missing_ok=True)
            raise


def _unpack(archive: Path, partial: Path, req: InstallRequest, donor: Path | None) -> None:
    """The upload and the files linked from the donor, each checked against SHA256SUMS."""
    import tarfile  # noqa: PLC0415 - only builds need it; every call pays for module imports

    with tarfile.open(archive) as bundle:
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(partial, filter="data")
        else:  # pragma: no cover - Pythons before 3.11.4; the operator made this tar itself
            bundle.extractall(partial)  # noqa: S202
    archive.unlink()
    for name in req["reuse"]:
        if donor is None or "/../" in f"/{name}/" or name.startswith("/"):
            raise AgentError(f"cannot reuse {name}: no donor release or not a relative path")
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(donor / name, partial / name)
    absent = req.get("absent", [])
    for name in absent:
        if not (name.startswith(("wheelhouse/", "tools/")) and name.endswith(".whl")):
            raise AgentError(f"only wheels may be left out of an upload, not {name}")
    mismatch = checksums.first_mismatch(partial, absent)
    if mismatch is not None:
        raise AgentError(f"checksum mismatch for {mismatch} after upload")


def _put_in_place(partial: Path, final: Path) -> None:
    """Rename the finished build to releases/<sha>, readable by the service user."""
    for path in [partial, *partial.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    if final.exists():
        # Built before the host's python3 changed and unable to start: `prepare` said it is
        # not complete, so it is rebuilt; `current` may name it and is left to the switch.
        stale = final.with_name(f".{final.name}.stale")
        os.replace(final, stale)
        os.replace(partial, final)
        shutil.rmtree(stale)
    else:
        os.replace(partial, final)
    fsync_dir(final.parent)


def _step(timings: dict[str, float], name: str, started: float) -> float:
    timings[name] = round(time.monotonic() - started, 3)
    return time.monotonic()


def _install(ctx: Context, req: InstallRequest, archive: Path, partial: Path) -> InstallAnswer:
    layout, system, sha = ctx.layout, ctx.system, req["sha"]
    donor = layout.releases / req["donor"] if req["donor"] else None
    timings: dict[str, float] = {}
    started = time.monotonic()
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _unpack(archive, partial, req, donor)
    manifest = json.loads((partial / MANIFEST).read_text())
    if manifest.get("commit") != sha:
        raise AgentError(f"the uploaded manifest is for {manifest.get('commit')}, not {sha}")
    started = _step(timings, "unpack", started)

    wheel = partial / next(
        f["path"] for f in manifest["files"] if "/" not in f["path"] and f["path"].endswith(".whl")
    )
    uv = venv.extract_uv(partial, donor)
    target = partial / "venv"
    if uv is not None and donor is not None and venv.same_dependencies(donor, partial):
        venv.clone_dependencies(donor / "venv", target, manifest["name"])
        venv.install_service(system, uv, target, wheel, manifest["name"])
        started = _step(timings, "venv (dependencies linked)", started)
    else:
        venv.build(system, uv, target, wheel, partial)
        started = _step(timings, "venv", started)

    # The release must at least accept this env's configuration before anything points at it.
    settings = {**venv.BUILD_ENV, **read_env_file(layout.config_file), "ENV": layout.env}
    system.run(
        [str(target / "bin" / "python"), "-m", "helionyx", "check-config", "--env", layout.env],
        env=settings,
        timeout=600,
        what="smoke check (helionyx check-config)",
    )
    started = _step(timings, "smoke_check", started)

    _put_in_place(partial, layout.releases / sha)
    _step(timings, "finalize", started)
    return {"timings": timings, "version": manifest.get("version")}

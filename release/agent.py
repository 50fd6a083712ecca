"""The host side of the pipeline: one small, standard-library-only program run on the node.

The operator starts it once per operation over SSH (`python3 -c <bootstrap>`, which reads this
file's compressed source from the first line of stdin), so nothing is installed on the host.
It greets with `{"ok": true, "result": {"agent": <pid>}}`, then answers each request line
`{"command": …, "request": {…}}` with one JSON line: `{"ok": true, "result": …}` or
`{"ok": false, "error": "…"}`, until stdin closes. Commands that change the host append their
outcome to the environment's `deploy-log.jsonl` themselves, so the record survives an operator
killed mid-way; `go_live` also writes the operation's finish record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SERVICE_USER = "helionyx"
LOG_NAME = "deploy-log.jsonl"
LOCK_NAME = ".lock"
MAX_LOG_ENTRIES = 2000


class AgentError(Exception):
    """A refusal or failure reported back to the operator as one line."""


def now() -> str:
    """UTC now, ISO 8601 with Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = 120,
    what: str | None = None,
    check: bool = True,
    user: int | None = None,
    group: int | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command on the host; with `check`, a failure is an AgentError naming `what`."""
    # stdin is the operator's request stream: no child may read from it.
    result = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        user=user,
        group=group,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        name = what or f"{Path(args[0]).name} {' '.join(args[1:3])}".rstrip()
        raise AgentError(f"{name} failed: {detail[-1] if detail else result.returncode}")
    return result


def sh(
    *args: str, check: bool = True, timeout: float | None = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command on the host with the agent's environment."""
    return run(list(args), check=check, timeout=timeout)


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- layout ------------------------------------------------------------------------------
class Layout:
    """Where an environment's pieces live on this host."""

    def __init__(self, req: dict[str, Any]) -> None:
        self.base = Path(req["base_dir"])
        self.releases = self.base / "releases"
        self.current = self.base / "current"
        self.previous = self.base / "previous"
        self.log = self.base / LOG_NAME
        self.lock = self.base / LOCK_NAME
        self.unit = str(req.get("unit", ""))
        self.port = int(req.get("port", 0))
        self.env = str(req.get("env", ""))
        self.config_file = Path(req.get("config_file", "/nonexistent"))
        self.data_dir = Path(req.get("data_dir", "/nonexistent"))

    def link_target(self, link: Path) -> str | None:
        """The release SHA a link (current/previous) points at, if it is a complete release."""
        try:
            target = str(link.readlink())
        except OSError:
            return None
        return Path(target).name

    def release_dirs(self) -> list[Path]:
        """Complete releases (never the hidden partial ones)."""
        if not self.releases.is_dir():
            return []
        return [p for p in self.releases.iterdir() if not p.name.startswith(".") and p.is_dir()]


def append_log(layout: Layout, events: list[dict[str, Any]]) -> None:
    """Append events to deploy-log.jsonl, durably; the file is never rewritten."""
    if not events:
        return
    layout.base.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events).encode()
    fd = os.open(layout.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(layout: Layout) -> list[dict[str, Any]]:
    """The last closing records of operations in the deploy log (a torn last line is skipped).

    Only `finish` records travel: they carry every decision's input (what succeeded, failed,
    in which order), and the per-step records would make each call's answer grow with history.
    """
    if not layout.log.exists():
        return []
    entries = []
    with layout.log.open("rb") as handle:
        for line in handle:
            if b'"finish"' not in line:  # cheap pre-filter; most lines are step records
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("step") == "finish":
                    entries.append(entry)
    return entries[-MAX_LOG_ENTRIES:]


# -- state -------------------------------------------------------------------------------
def unit_state(unit: str) -> dict[str, str]:
    """systemd's view of the unit."""
    if not unit:
        return {}
    props = (
        "ActiveState,SubState,MainPID,ActiveEnterTimestampMonotonic,LoadState,UnitFileState,"
        "NRestarts,Result"
    )
    result = sh("systemctl", "show", f"{unit}.service", f"--property={props}", check=False)
    state = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    entered = int(state.get("ActiveEnterTimestampMonotonic", "0") or 0)
    if state.get("ActiveState") == "active" and entered:
        state["uptime_seconds"] = f"{time.clock_gettime(time.CLOCK_MONOTONIC) - entered / 1e6:.1f}"
    return state


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, dict[str, Any] | None, str]:
    """GET a local endpoint: (status, JSON body, error text).

    A bare HTTP/1.0 exchange over a socket: urllib would cost every agent start 60 ms of imports
    for a request to our own service on the loopback.
    """
    import socket  # noqa: PLC0415 - only probes need it

    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(request.encode())
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        return 0, None, str(exc) or type(exc).__name__
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return 0, None, "not an HTTP answer"
    try:
        return int(status_line[1]), json.loads(body or b"null"), ""
    except ValueError:
        return int(status_line[1]), None, ""


def cmd_state(req: dict[str, Any]) -> dict[str, Any]:
    """Everything `status`, `releases` and a deploy's planning need, in one call."""
    layout = Layout(req)
    releases = []
    for path in layout.release_dirs():
        info: dict[str, Any] = {"sha": path.name, "complete": (path / "manifest.json").is_file()}
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / "manifest.json").read_text())
            info.update(
                version=manifest.get("version"),
                tag=manifest.get("tag"),
                built_at=manifest.get("built_at"),
            )
        releases.append(info)
    partials = (
        sorted(p.name for p in layout.releases.glob(".*")) if layout.releases.is_dir() else []
    )
    health: dict[str, Any] = {}
    if req.get("probe") and layout.port:
        status, body, error = http_get(layout.port, "/health")
        ready_status, ready_body, _ = http_get(layout.port, "/health/ready")
        health = {
            "status": status,
            "body": body,
            "error": error,
            "ready_status": ready_status,
            "ready_body": ready_body,
        }
    return {
        "releases": releases,
        "partials": partials,
        "current": layout.link_target(layout.current),
        "previous": layout.link_target(layout.previous),
        "lock": read_lock(layout),
        "unit": unit_state(layout.unit),
        "health": health,
        "setup": {
            "user": _user_exists(),
            "config_file": layout.config_file.is_file(),
            "unit_file": Path(f"/etc/systemd/system/{layout.unit}.service").is_file(),
            "base_dir": layout.base.is_dir(),
        },
        "log": read_log(layout),
    }


def _user_exists() -> bool:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return False
    return True


# -- the lock ----------------------------------------------------------------------------
def read_lock(layout: Layout) -> dict[str, Any] | None:
    """The lock holder, if the env is locked."""
    if not layout.lock.is_dir():
        return None
    try:
        holder: dict[str, Any] = json.loads((layout.lock / "holder.json").read_text())
    except (OSError, ValueError):
        # mkdir succeeded but the holder file was never written: a holder killed in between.
        holder = {"holder": "unknown", "incomplete": True}
    return holder


def cmd_lock(req: dict[str, Any]) -> dict[str, Any]:
    """Take the env lock with an atomic rename, or say who holds it."""
    layout = Layout(req)
    if not layout.base.is_dir():
        return {"acquired": False, "not_set_up": True, "holder": None}
    replace = req.get("replace_token")
    if replace is not None:
        current = read_lock(layout)
        if current is not None and current.get("token") == replace:
            shutil.rmtree(layout.lock, ignore_errors=True)
    if layout.lock.exists():
        # Refused without touching anything: a held lock leaves the host exactly as it was.
        return {"acquired": False, "holder": read_lock(layout)}
    holder = dict(req["holder"])
    # Built whole under a private name, then renamed into place: whoever sees the lock also
    # sees its holder (a mkdir first left a moment when a rival read an empty lock).
    staged = layout.base / f".lock.{os.getpid()}.{time.monotonic_ns()}"
    staged.mkdir()
    (staged / "holder.json").write_text(json.dumps(holder))
    try:
        # rename(2) onto a directory that is not empty fails: a rival won in between.
        staged.rename(layout.lock)
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
        return {"acquired": False, "holder": read_lock(layout)}
    fsync_dir(layout.base)
    # The state under the lock comes back in the same round trip.
    return {"acquired": True, "holder": holder, "state": cmd_state({**req, "probe": True})}


def cmd_unlock(req: dict[str, Any]) -> dict[str, Any]:
    """Release the lock if `token` still holds it (or unconditionally with force)."""
    layout = Layout(req)
    holder = read_lock(layout)
    if holder is None:
        return {"released": False}
    if req.get("force") or holder.get("token") == req.get("token"):
        shutil.rmtree(layout.lock, ignore_errors=True)
        return {"released": True, "holder": holder}
    return {"released": False, "holder": holder}


# -- building a release ------------------------------------------------------------------
@contextlib.contextmanager
def build_lock(layout: Layout) -> Any:
    """Serialise work on releases/ between agents.

    An operator killed mid-build leaves its agent running on the host (nothing ends it with the
    SSH session); the next deploy's agent waits here for it instead of building over it.
    """
    import fcntl  # noqa: PLC0415 - POSIX only, like the host

    layout.base.mkdir(parents=True, exist_ok=True)
    with (layout.base / ".build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_prepare(req: dict[str, Any]) -> dict[str, Any]:
    """Remove leftovers of interrupted deploys; say whether the release is already complete."""
    with build_lock(Layout(req)):
        return _prepare(req)


def _prepare(req: dict[str, Any]) -> dict[str, Any]:
    layout = Layout(req)
    layout.releases.mkdir(parents=True, exist_ok=True)
    removed = []
    for leftover in layout.releases.glob(".*"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
        removed.append(leftover.name)
    for stale in layout.base.glob(".current.*"):
        stale.unlink()
        removed.append(stale.name)
    final = layout.releases / req["sha"]
    donor = _donor(layout, req["sha"])
    return {
        "complete": (final / "manifest.json").is_file(),
        "removed": removed,
        "donor": donor.name if donor else None,
        "donor_sums": _read_sums(donor) if donor else {},
    }


def _donor(layout: Layout, sha: str) -> Path | None:
    """A complete release whose identical files a new release may share (current first)."""
    current = layout.link_target(layout.current)
    candidates = sorted(
        (p for p in layout.release_dirs() if p.name != sha),
        key=lambda p: (p.name != current, -p.stat().st_mtime),
    )
    return next((p for p in candidates if (p / "manifest.json").is_file()), None)


def _read_sums(directory: Path) -> dict[str, str]:
    sums = {}
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name] = digest
    return sums


def _verify_sums(directory: Path) -> None:
    for name, digest in _read_sums(directory).items():
        digest_now = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if digest_now != digest:
            raise AgentError(f"checksum mismatch for {name} after upload")


def _link_tree(source: Path, target: Path, skip: set[Path]) -> None:
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


def _extract_uv(directory: Path, donor: Path | None) -> Path | None:
    wheels = (
        sorted((directory / "tools").glob("uv-*.whl")) if (directory / "tools").is_dir() else []
    )
    if not wheels:
        return None
    target = directory / "tools" / "uv"
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


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE settings from a file, as systemd's EnvironmentFile= reads them; {} if absent."""
    return parse_env(path.read_text()) if path.is_file() else {}


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped, one pair of quotes removed.

    The one parser of settings files: setup-host validates a file with it before sending it.
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _step(timings: dict[str, float], name: str, started: float) -> float:
    timings[name] = round(time.monotonic() - started, 3)
    return time.monotonic()


def cmd_install(req: dict[str, Any]) -> dict[str, Any]:
    """Unpack an uploaded artifact into releases/.<sha>.partial, build its venv offline, smoke
    check it, and rename it to releases/<sha>. Nothing outside the partial dir is touched.

    Files the operator did not send (`reuse`) are hard-linked from the donor release, and when
    the donor was built from the same lock its dependencies are linked rather than reinstalled;
    every file is checked against SHA256SUMS either way.
    """
    layout = Layout(req)
    sha = req["sha"]
    archive = Path(req["archive"])
    partial = layout.releases / f".{sha}.partial"
    final = layout.releases / sha
    donor = layout.releases / req["donor"] if req.get("donor") else None
    with build_lock(layout):
        try:
            return _install(
                layout,
                sha,
                archive=archive,
                partial=partial,
                final=final,
                donor=donor,
                reuse=req.get("reuse", []),
            )
        except BaseException:
            # Nothing half-made stays behind; the next deploy starts clean either way.
            shutil.rmtree(partial, ignore_errors=True)
            archive.unlink(missing_ok=True)
            raise


def _install(
    layout: Layout,
    sha: str,
    *,
    archive: Path,
    partial: Path,
    final: Path,
    donor: Path | None,
    reuse: list[str],
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    import tarfile  # noqa: PLC0415 - only builds need it; every call pays for module imports

    with tarfile.open(archive) as bundle:
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(partial, filter="data")
        else:  # pragma: no cover - Pythons before 3.11.4; the operator made this tar itself
            bundle.extractall(partial)  # noqa: S202
    archive.unlink()
    for name in reuse:
        if donor is None or "/../" in f"/{name}/" or name.startswith("/"):
            raise AgentError(f"cannot reuse {name}: no donor release or not a relative path")
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(donor / name, partial / name)
    _verify_sums(partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    if manifest.get("commit") != sha:
        raise AgentError(f"the uploaded manifest is for {manifest.get('commit')}, not {sha}")
    started = _step(timings, "unpack", started)

    wheel = partial / next(
        f["path"] for f in manifest["files"] if "/" not in f["path"] and f["path"].endswith(".whl")
    )
    uv = _extract_uv(partial, donor)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    venv = partial / "venv"
    if uv is not None and donor is not None and _same_dependencies(donor, partial):
        _clone_dependencies(donor / "venv", venv, manifest["name"])
        _install_service(uv, venv, wheel, manifest["name"], env)
        started = _step(timings, "venv (dependencies linked)", started)
    else:
        _build_venv(uv, venv, wheel, partial, env)
        started = _step(timings, "venv", started)

    # The release must at least accept this env's configuration before anything points at it.
    settings = {**env, **read_env_file(layout.config_file), "ENV": layout.env}
    _run_env(
        [str(venv / "bin" / "python"), "-m", "helionyx", "check-config", "--env", layout.env],
        settings,
        what="smoke check (helionyx check-config)",
    )
    started = _step(timings, "smoke_check", started)

    for path in [partial, *partial.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    os.replace(partial, final)
    fsync_dir(layout.releases)
    _step(timings, "finalize", started)
    return {"timings": timings, "version": manifest.get("version")}


def _uv_install(uv: Path, venv: Path) -> list[str]:
    return [
        str(uv),
        "pip",
        "install",
        "--python",
        str(venv / "bin" / "python"),
        "--offline",
        "--no-index",
        "--no-cache",
        "--quiet",
    ]


def _build_venv(
    uv: Path | None, venv: Path, wheel: Path, partial: Path, env: dict[str, str]
) -> None:
    """A new venv: dependencies from the wheelhouse with the lock's hashes, then the service."""
    wheelhouse = str(partial / "wheelhouse")
    lock = str(partial / "requirements.lock")
    if uv is not None:
        # Relocatable: scripts find their interpreter relative to themselves, so the venv
        # works after releases/.<sha>.partial is renamed and can be linked into later releases.
        _run_env(
            [
                str(uv),
                "venv",
                "--relocatable",
                "--python",
                sys.executable,
                "--offline",
                "--no-cache",
                "--quiet",
                str(venv),
            ],
            env,
        )
        install = [*_uv_install(uv, venv), "--compile-bytecode"]
    else:  # an artifact without tools/: pip, slower, same guarantees
        sh("python3", "-m", "venv", str(venv))
        install = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
            "--no-cache-dir",
        ]
    # Dependencies only from the wheelhouse and only with the lock's hashes; the service wheel
    # (which has no hash in the lock) alone, without dependencies.
    _run_env([*install, "--find-links", wheelhouse, "--require-hashes", "-r", lock], env)
    _run_env([*install, "--no-deps", str(wheel)], env)
    if uv is None:
        _run_env([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")], env)


def _pyvenv(venv: Path) -> dict[str, str]:
    values = {}
    with contextlib.suppress(OSError):
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _same_dependencies(donor: Path, partial: Path) -> bool:
    """Whether the donor's venv holds exactly what this release's lock would install."""
    config = _pyvenv(donor / "venv")
    return (
        config.get("relocatable") == "true"
        and config.get("version_info") == ".".join(map(str, sys.version_info[:3]))
        and (donor / "requirements.lock").read_bytes()
        == (partial / "requirements.lock").read_bytes()
    )


def _clone_dependencies(source: Path, venv: Path, name: str) -> None:
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
    _link_tree(source, venv, skip)


def _install_service(uv: Path, venv: Path, wheel: Path, name: str, env: dict[str, str]) -> None:
    """Only the service wheel, into a venv that already holds its dependencies."""
    _run_env([*_uv_install(uv, venv), "--no-deps", str(wheel)], env)
    site = next(venv.glob("lib/python*/site-packages"))
    # Bytecode for the new package only: the linked dependencies carry theirs.
    package = site / name.replace("-", "_")
    _run_env([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(package)], env)


def _run_env(args: list[str], env: dict[str, str], what: str | None = None) -> None:
    run(args, env=env, timeout=600, what=what)


# -- switching, restarting, judging ------------------------------------------------------
def _flip(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a new symlink renamed over the old one."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)
    fsync_dir(link.parent)


def cmd_switch(req: dict[str, Any]) -> dict[str, Any]:
    """Flip `current` (and `previous`, when given) to complete releases."""
    layout = Layout(req)
    sha = req["sha"]
    if not (layout.releases / sha / "manifest.json").is_file():
        raise AgentError(f"release {sha} is not complete on this host")
    before = layout.link_target(layout.current)
    previous = req.get("previous")
    if previous and (layout.releases / previous / "manifest.json").is_file():
        _flip(layout.previous, f"releases/{previous}")
    _flip(layout.current, f"releases/{sha}")
    return {"before": before, "current": sha}


def health_gate(
    layout: Layout,
    version: str | None,
    sha: str | None,
    timeout: float,
    since_pid: str | None = None,
) -> dict[str, Any]:
    """Poll /health/ready until it is 200 and reports `version` and `sha`, or time out."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last = "no answer yet"
    while True:
        status, body, error = http_get(layout.port, "/health/ready", timeout=1.0)
        if status == 200 and isinstance(body, dict):
            seen = (body.get("version"), body.get("commit"))
            if (version is None or seen[0] == version) and (sha is None or seen[1] == sha):
                return {
                    "healthy": True,
                    "seconds": round(time.monotonic() - started, 3),
                    "body": body,
                }
            last = (
                f"serving version {seen[0]} commit {str(seen[1])[:12]}, "
                f"expected {version} {str(sha)[:12]}"
            )
        elif status:
            reason = body.get("reason") if isinstance(body, dict) else None
            last = f"/health/ready answered {status}" + (f": {reason}" if reason else "")
        else:
            last = f"/health/ready not answering ({error})"
        state = unit_state(layout.unit)
        if state.get("ActiveState") == "failed":
            return {
                "healthy": False,
                "reason": f"the unit failed ({state.get('Result')}); {last}",
                "seconds": round(time.monotonic() - started, 3),
            }
        if time.monotonic() >= deadline:
            return {
                "healthy": False,
                "reason": f"not healthy within {timeout:.0f} s: {last}",
                "seconds": round(time.monotonic() - started, 3),
            }
        time.sleep(0.02)


def install_units(units: dict[str, str]) -> list[str]:
    """Write unit files that differ from `units` and reload systemd if any did."""
    changed = []
    for name, text in sorted(units.items()):
        path = Path("/etc/systemd/system") / name
        if not path.exists() or path.read_text() != text:
            temporary = path.with_name(f".{name}.tmp")
            temporary.write_text(text)
            temporary.chmod(0o644)
            os.replace(temporary, path)
            changed.append(f"installed {path}")
    if changed:
        sh("systemctl", "daemon-reload")
    return changed


def ensure_socket(layout: Layout) -> list[str]:
    """Have systemd listen on the env's port; migrates a service that still binds it itself."""
    socket_unit = f"{layout.unit}.socket"
    if not Path(f"/etc/systemd/system/{socket_unit}").exists():
        return []
    if sh("systemctl", "is-active", "--quiet", socket_unit, check=False).returncode == 0:
        return []
    done = []
    if (
        sh("systemctl", "is-active", "--quiet", f"{layout.unit}.service", check=False).returncode
        == 0
    ):
        # Set up before socket activation: the running process owns the port. Stop it so the
        # socket can bind; the restart that follows starts the service on the socket.
        sh("systemctl", "stop", f"{layout.unit}.service", timeout=60)
        done.append(f"moved the listening socket of {layout.unit} to systemd")
    sh("systemctl", "reset-failed", socket_unit, check=False)
    sh("systemctl", "enable", "--quiet", socket_unit)
    sh("systemctl", "start", socket_unit)
    return done


def cmd_restart(req: dict[str, Any]) -> dict[str, Any]:
    """Restart the unit and run the health gate against the expected version and SHA."""
    layout = Layout(req)
    started = time.monotonic()
    migrated = install_units(req.get("units") or {})
    sh("systemctl", "reset-failed", f"{layout.unit}.service", check=False)
    migrated += ensure_socket(layout)
    result = sh("systemctl", "restart", f"{layout.unit}.service", check=False, timeout=120)
    restart_seconds = round(time.monotonic() - started, 3)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()
        return {
            "healthy": False,
            "restart_seconds": restart_seconds,
            "reason": f"systemctl restart failed: {detail[-1] if detail else result.returncode}",
        }
    gate = health_gate(layout, req.get("version"), req.get("sha"), float(req.get("timeout", 20)))
    gate["restart_seconds"] = restart_seconds
    gate["changes"] = migrated
    return gate


def cmd_activate(req: dict[str, Any]) -> dict[str, Any]:
    """Switch and restart with the health gate in one round trip (rollbacks)."""
    switched = cmd_switch(req)
    return {**cmd_restart(req), "before": switched["before"]}


def cmd_go_live(req: dict[str, Any]) -> dict[str, Any]:
    """Switch to a built release, restart, health-gate; on failure switch back, restart and
    re-check. One step on the host, which also writes the operation's finish record, so it
    completes and is recorded even when the operator is gone (killed, cut off) mid-way."""
    layout = Layout(req)
    try:
        result = _go_live(layout, req)
    except Exception as exc:
        _finish(layout, req, "failed", str(exc) or type(exc).__name__)
        raise
    _finish(layout, req, result["outcome"], result["reason"])
    return result


def _go_live(layout: Layout, req: dict[str, Any]) -> dict[str, Any]:
    switched = cmd_switch(req)
    gate = cmd_restart(req)
    outcome, reason, journal = "succeeded", None, []
    if not gate["healthy"]:
        reason = str(gate["reason"])
        journal = cmd_journal({"unit": layout.unit, "lines": 20})["lines"]
        back_to = req.get("back_to")
        if not back_to or not (layout.releases / back_to / "manifest.json").is_file():
            outcome, reason = "failed", f"{reason}; no previous release to roll back to"
        else:
            back = cmd_activate(
                {
                    **req,
                    "sha": back_to,
                    "version": req.get("back_version"),
                    "previous": req.get("back_previous"),
                }
            )
            if back["healthy"]:
                outcome, reason = "rolled_back", f"{reason}; rolled back to {back_to[:12]}"
            else:
                outcome = "failed"
                reason = (
                    f"{reason}; the rollback to {back_to[:12]} is not healthy either: "
                    f"{back['reason']}"
                )
    return {
        "healthy": outcome == "succeeded",
        "outcome": outcome,
        "reason": reason,
        "journal": journal,
        "seconds": gate.get("seconds"),
        "before": switched["before"],
        "changes": gate.get("changes", []),
    }


def _finish(layout: Layout, req: dict[str, Any], outcome: str, reason: str | None) -> None:
    """The operation's closing record, completed here with what happened."""
    finish = {**req["finish"], "outcome": outcome, "ended_at": now()}
    if reason:
        finish["reason"] = reason
    append_log(layout, [finish])


def cmd_stop(req: dict[str, Any]) -> dict[str, Any]:
    """Stop the unit."""
    layout = Layout(req)
    # The socket too: a listening socket would start the service again on the next request.
    units = [f"{layout.unit}.socket", f"{layout.unit}.service"]
    present = [u for u in units if Path(f"/etc/systemd/system/{u}").exists()]
    sh("systemctl", "stop", *present, timeout=60)
    return {"unit": unit_state(layout.unit)}


def cmd_journal(req: dict[str, Any]) -> dict[str, Any]:
    """The unit's last journal lines."""
    result = sh(
        "journalctl",
        "-u",
        f"{req['unit']}.service",
        "-n",
        str(int(req.get("lines", 20))),
        "--no-pager",
        "-o",
        "short-iso",
        check=False,
    )
    return {"lines": result.stdout.splitlines()}


def cmd_prune(req: dict[str, Any]) -> dict[str, Any]:
    """Keep the newest `keep` good releases; delete failed and older ones, never protected."""
    layout = Layout(req)
    protected = {
        s for s in (layout.link_target(layout.current), layout.link_target(layout.previous)) if s
    } | set(req.get("protect", []))
    failed = set(req.get("failed", []))
    order = {sha: rank for rank, sha in enumerate(req.get("newest_first", []))}
    releases = sorted(
        (p.name for p in layout.release_dirs()), key=lambda s: order.get(s, len(order))
    )
    good = [s for s in releases if s not in failed]
    keep = set(good[: int(req["keep"])]) | protected
    removed = []
    for sha in releases:
        if sha not in keep:
            # Rename first so a half-deleted release is never mistaken for a complete one.
            doomed = layout.releases / f".{sha}.deleting"
            os.replace(layout.releases / sha, doomed)
            shutil.rmtree(doomed)
            removed.append(sha)
    return {"removed": removed}


# -- first-time host set-up --------------------------------------------------------------
# -- backups ---------------------------------------------------------------------------
BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


def backup_root(config_file: Path, env: str) -> Path:
    """BACKUP_ROOT/<env>, BACKUP_ROOT from the env's settings file when it is an absolute path
    (a relative one is meant for running the service in a checkout), else /var/backups/helionyx."""
    configured = Path(read_env_file(config_file).get("BACKUP_ROOT") or ".")
    return (configured if configured.is_absolute() else Path("/var/backups/helionyx")) / env


def _copy_prefix(source: Path, target: Path, size: int) -> str:
    """Copy the first `size` bytes of `source` to `target`; return their SHA-256."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        left = size
        while left:
            chunk = reader.read(min(left, 1 << 20))
            if not chunk:
                raise AgentError(f"{source} is shorter than its recorded position")
            writer.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cmd_backup(req: dict[str, Any]) -> dict[str, Any]:
    """Snapshot the env while it runs: events up to a position taken under the store's lock,
    projections through SQLite's online backup, the deploy log, a manifest with checksums."""
    import fcntl  # noqa: PLC0415 - POSIX only, like the host
    import sqlite3  # noqa: PLC0415 - only backups need it

    layout = Layout(req)
    events_dir = layout.data_dir / "events"
    if not events_dir.is_dir():
        raise AgentError(f"{events_dir} does not exist: nothing to back up")
    root = backup_root(layout.config_file, layout.env)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # the users' messages: root only
    backup_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = 1
    while (root / backup_id).exists():
        backup_id = f"{backup_id.split('-')[0]}-{suffix}"
        suffix += 1
    partial = root / f".{backup_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "events").mkdir(parents=True, mode=0o700)
    # The position: every file's size, read while the service cannot append (appends are whole
    # lines under this lock), so the copy ends on a line boundary in every file.
    with (events_dir / ".events.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        position = {p.name: p.stat().st_size for p in sorted(events_dir.glob("events-*.jsonl"))}
    events: list[dict[str, Any]] = []
    for name, size in position.items():
        digest = _copy_prefix(events_dir / name, partial / "events" / name, size)
        lines = (partial / "events" / name).read_bytes().count(b"\n")
        events.append({"file": name, "bytes": size, "lines": lines, "sha256": digest})
    db = layout.data_dir / "projections" / "projections.db"
    if db.is_file():
        source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        target = sqlite3.connect(partial / "projections.db")
        with target:
            source.backup(target)
        source.close()
        target.close()
    if layout.log.is_file():
        shutil.copyfile(layout.log, partial / LOG_NAME)
    manifest = {
        "schema_version": 1,
        "id": backup_id,
        "env": layout.env,
        "created_at": now(),
        "position": position,
        "events": events,
        "event_count": sum(int(e["lines"]) for e in events),
        "release": layout.link_target(layout.current),
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    files = sorted(p for p in partial.rglob("*") if p.is_file())
    sums = "".join(f"{_file_sha256(p)}  {p.relative_to(partial).as_posix()}\n" for p in files)
    (partial / "SHA256SUMS").write_text(sums)
    size = sum(p.stat().st_size for p in files)
    names = [p.relative_to(partial).as_posix() for p in files] + ["SHA256SUMS"]
    os.replace(partial, root / backup_id)
    fsync_dir(root)
    removed = _prune_backups(root, int(req.get("keep_backups", 7)))
    return {
        "id": backup_id,
        "path": str(root / backup_id),
        "event_count": manifest["event_count"],
        "bytes": size,
        "files": names,
        "removed": removed,
    }


def _backup_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and BACKUP_ID.match(p.name))


def _prune_backups(root: Path, keep: int) -> list[str]:
    doomed = _backup_dirs(root)[: -keep or None] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return [p.name for p in doomed]


def cmd_backups(req: dict[str, Any]) -> dict[str, Any]:
    """The env's backups, oldest first."""
    layout = Layout(req)
    root = backup_root(layout.config_file, layout.env)
    listed = []
    for path in _backup_dirs(root):
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / "manifest.json").read_text())
            listed.append(
                {
                    "id": path.name,
                    "path": str(path),
                    "created_at": manifest.get("created_at"),
                    "event_count": manifest.get("event_count"),
                    "release": manifest.get("release"),
                }
            )
    return {"root": str(root), "backups": listed}


def _verify_backup(path: Path) -> dict[str, Any]:
    if not (path / "SHA256SUMS").is_file():
        raise AgentError(f"{path} is not a complete backup (no SHA256SUMS)")
    for name, digest in _read_sums(path).items():
        if not (path / name).is_file() or _file_sha256(path / name) != digest:
            raise AgentError(f"backup {path.name}: checksum mismatch for {name}")
    manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return manifest


def cmd_restore(req: dict[str, Any]) -> dict[str, Any]:
    """Verify a backup, stop the env, put the backup's events in place (keeping what they
    replace), rebuild projections, start and health-check."""
    layout = Layout(req)
    source_root = backup_root(Path(req["source_config_file"]), req["source_env"])
    path = source_root / req["backup_id"]
    if not BACKUP_ID.match(req["backup_id"]) or not path.is_dir():
        raise AgentError(f"no backup {req['backup_id']} of {req['source_env']} in {source_root}")
    manifest = _verify_backup(path)
    current = layout.link_target(layout.current)
    if current is None or not (layout.releases / current / "manifest.json").is_file():
        raise AgentError(f"{layout.env} has no current release to rebuild projections with")
    cmd_stop(req)
    moved: list[tuple[Path, Path]] = []
    try:
        rebuilt = _swap_in(layout, path, manifest, current, moved)
    except BaseException:
        # A restore that cannot finish changes nothing: the replaced data goes back and the
        # env starts again on it.
        for original, aside in reversed(moved):
            shutil.rmtree(original, ignore_errors=True)
            os.replace(aside, original)
        _start(layout)
        raise
    _start(layout)
    kept = [str(aside) for _, aside in moved]
    gate = health_gate(layout, None, current, float(req.get("timeout", 20)))
    return {
        **gate,
        "backup": manifest["id"],
        "from_env": manifest["env"],
        "event_count": manifest["event_count"],
        "kept": kept,
        "rebuilt": rebuilt,
    }


def _start(layout: Layout) -> None:
    for unit in (f"{layout.unit}.socket", f"{layout.unit}.service"):
        sh("systemctl", "start", unit, timeout=60)


def _swap_in(
    layout: Layout,
    backup: Path,
    manifest: dict[str, Any],
    current: str,
    moved: list[tuple[Path, Path]],
) -> str:
    """Move events/ and projections/ aside (recorded in `moved`), put the backup's events in
    place and rebuild the projections from them with the current release."""
    user = pwd.getpwnam(SERVICE_USER)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for sub in ("events", "projections"):
        existing = layout.data_dir / sub
        if existing.exists():
            aside = layout.data_dir / f"{sub}.replaced-{stamp}"
            os.replace(existing, aside)
            moved.append((existing, aside))
        existing.mkdir(mode=0o750)
        os.chown(existing, user.pw_uid, user.pw_gid)
    for entry in manifest["events"]:
        target = layout.data_dir / "events" / entry["file"]
        shutil.copyfile(backup / "events" / entry["file"], target)
        os.chown(target, user.pw_uid, user.pw_gid)
        target.chmod(0o640)
    fsync_dir(layout.data_dir / "events")
    settings = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        **read_env_file(layout.config_file),
        "ENV": layout.env,
    }
    python = layout.releases / current / "venv" / "bin" / "python"
    result = run(
        [str(python), "-m", "helionyx", "rebuild-projections", "--env", layout.env],
        env=settings,
        timeout=600,
        what="rebuilding projections",
        user=user.pw_uid,
        group=user.pw_gid,
        cwd=layout.data_dir,
    )
    return result.stdout.strip()


def cmd_setup(req: dict[str, Any]) -> dict[str, Any]:
    """Create the service user, directories, config file (0600 root), unit; enable it."""
    layout = Layout(req)
    done = []
    if not _user_exists():
        sh(
            "useradd",
            "--system",
            "--home-dir",
            "/var/lib/helionyx",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER,
        )
        done.append(f"created system user {SERVICE_USER}")
    user = pwd.getpwnam(SERVICE_USER)
    layout.releases.mkdir(parents=True, exist_ok=True)
    for path in (layout.base.parent, layout.base, layout.releases):
        path.chmod(0o755)
    for sub in ("", "events", "projections"):
        path = layout.data_dir / sub if sub else layout.data_dir
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o750)
    config = layout.config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.parent.chmod(0o755)
    upload = Path(req["config_upload"])
    if not config.exists() or config.read_bytes() != upload.read_bytes():
        upload.chmod(0o600)
        os.chown(upload, 0, 0)
        with upload.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(upload, config)
        done.append(f"wrote {config}")
    else:
        upload.unlink()
    config.chmod(0o600)
    done += install_units(req["units"])
    sh("systemctl", "enable", "--quiet", f"{layout.unit}.socket", f"{layout.unit}.service")
    if layout.link_target(layout.current):
        done += ensure_socket(layout)
    return {"done": done}


COMMANDS = {
    "state": cmd_state,
    "lock": cmd_lock,
    "unlock": cmd_unlock,
    "prepare": cmd_prepare,
    "install": cmd_install,
    "switch": cmd_switch,
    "restart": cmd_restart,
    "activate": cmd_activate,
    "go_live": cmd_go_live,
    "stop": cmd_stop,
    "journal": cmd_journal,
    "prune": cmd_prune,
    "setup": cmd_setup,
    "backup": cmd_backup,
    "backups": cmd_backups,
    "restore": cmd_restore,
}


def handle(command: str, req: dict[str, Any]) -> dict[str, Any]:
    """Run one command; return its answer and record its outcome in the deploy log."""
    layout = Layout(req) if "base_dir" in req else None
    started = now()
    try:
        if layout is not None:
            append_log(layout, req.get("log_before", []))
        result = COMMANDS[command](req)
        answer = {"ok": True, "result": result}
    except (AgentError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        answer = {"ok": False, "error": str(exc) or type(exc).__name__}
    record = req.get("record")
    if layout is not None and record:
        outcome = "ok" if answer["ok"] else "failed"
        if (
            answer["ok"]
            and isinstance(answer["result"], dict)
            and answer["result"].get("healthy") is False
        ):
            outcome = "failed"
        event = {**record, "outcome": outcome, "started_at": started, "ended_at": now()}
        if not answer["ok"]:
            event["reason"] = answer["error"]
        elif isinstance(answer["result"], dict) and answer["result"].get("reason"):
            event["reason"] = answer["result"]["reason"]
        append_log(layout, [event])
    return answer


def serve() -> int:
    """Answer `{"command": …, "request": …}` lines from stdin until it closes.

    One agent process serves a whole operation, so each step costs a line each way instead
    of a new SSH channel and interpreter. When the operator goes away mid-step, the step
    still finishes and records itself; only its answer has nowhere to go.
    """
    # The operator's end going away (a kill, a cut link) must not stop a step half-way.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.stdout.write(json.dumps({"ok": True, "result": {"agent": os.getpid()}}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        answer = handle(message["command"], message.get("request", {}))
        try:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            return 0
    return 0


def main(argv: list[str]) -> int:
    """`serve` (the only way the agent is run)."""
    if argv != ["serve"]:
        print("usage: helionyx-agent serve", file=sys.stderr)
        return 2
    return serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The real host agent, driven in-process against a temporary directory standing in for `/`.

Two hand-written fakes of our own small interfaces, not of the agent: `FakeSystem` is the
machine under the agent (`release.agent.system.System`: systemd, the service's HTTP port, the
service user, the programs a build runs), and `InProcessRemote` is the transport
(`release.hosts.remote.Remote`), which hands each request line to the agent's own `handle`.
Everything else — the lock, the deploy log, checksums, linking, the flips, prune, backups —
is the real code on real files. No root, no node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from helionyx.domain.projections import FORCED_READ, forced_read_model_path, read_model_path
from release.agent.checksums import sha256_file
from release.agent.contract import of_manifest
from release.agent.errors import AgentError
from release.agent.interpreter import too_old
from release.agent.protocol import (
    MANIFEST,
    SERVICE_USER,
    DataContract,
    HostPlatform,
    Progress,
    TargetsRecord,
)
from release.agent.serve import handle
from release.agent.settings import read_env_file
from release.agent.system import Probe, Ticker
from release.artifacts.artifact import FileEntry, Manifest, artifact_files, write_manifest
from release.artifacts.store import DirStore
from release.clock import Clock, SystemClock
from release.errors import SessionClosed
from release.hosts.bundle import AGENT_BUNDLE
from release.hosts.context import Context, Options
from release.hosts.deploy import DeployResult, deploy
from release.hosts.environments import Environment, load
from release.hosts.promote import promote
from release.hosts.remote import Result
from release.hosts.setup import fill_settings, setup_host
from release.progress import NoProgress

REPO = Path(__file__).resolve().parents[2]
TOKEN = "in-process-token-0123456789abcdef"


@dataclass
class Service:
    """What the fake knows of an env's service beyond systemd's state: where it runs from."""

    base: Path
    port: int
    env: str
    serving: tuple[str, str] | None = None  # (version, commit)
    #: Times its process was started (by hand or by systemd).
    starts: int = 0
    #: Probes answered since the last start.
    probes: int = 0


@dataclass
class Unit:
    """systemd's state of one unit, as `systemctl show` reports it."""

    active: str = "inactive"
    sub: str = "dead"
    result: str = "success"
    restarts: int = 0


class FakeSystem:
    """systemd, the loopback, the service user and a clock of a pretend host under `root`.

    As strict as systemd for what the agent asks (tests/release/agent/test_system_contract.py
    puts the same questions to the real node): a unit exists when its file is installed, an
    unknown one cannot be started, stopped, enabled or reset; `Requires=` starts the socket
    with its service; a service that dies is restarted after `RestartSec=` when its unit says
    `Restart=on-failure`, counted in NRestarts (which a manual start resets). Time is virtual:
    `sleep` moves the clock and runs what was scheduled with `after`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.units_dir = root / "etc" / "systemd" / "system"
        self.backups_dir = root / "var" / "backups" / "helionyx"
        self.units_dir.mkdir(parents=True, exist_ok=True)
        self.user = False
        self.services: dict[str, Service] = {}
        self.units: dict[str, Unit] = {}
        self.now = 1000.0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        #: Commits whose service exits at start-up.
        self.broken: set[str] = set()
        #: Seconds `helionyx rebuild-projections` takes.
        self.rebuild_takes = 0.0
        #: Commits whose smoke check (check-config) fails.
        self.unconfigurable: set[str] = set()
        #: Commits that pass their health gate, then crash (after a few probes).
        self.crashing: set[str] = set()
        #: Commits that pass their health gate, then answer requests with 500s.
        self.erroring: set[str] = set()
        #: Programs (by an argument they are run with) that fail, e.g. "rebuild-projections".
        self.failing: set[str] = set()
        self.ran: list[list[str]] = []
        self.systemctl_calls: list[tuple[str, ...]] = []
        #: This boot's identity (a new one after a pretend reboot).
        self.boot = "boot-1"
        #: What the host's python3, machine and glibc are.
        self.host_platform: HostPlatform = {
            "python": "3.11.2",
            "implementation": "cpython",
            "machine": "x86_64",
            "glibc": "2.36",
        }

    def add(self, env: Environment) -> None:
        """Know where the env's service runs from (its units come from `setup`)."""
        self.services[env.unit] = Service(Path(env.base_dir), env.port, env.name)

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        """Do `action` once the clock has moved on `seconds`."""
        self.timers.append((self.now + seconds, action))

    # -- System ----------------------------------------------------------------------------
    def platform(self) -> HostPlatform:
        return self.host_platform

    def boot_id(self) -> str:
        return self.boot

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, action in sorted(due, key=lambda t: t[0]):
            action()

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        what: str | None = None,
        as_service_user: bool = False,
        cwd: Path | None = None,
        on_tick: Ticker | None = None,
    ) -> str:
        """A build's programs (venv, pip/uv, compileall, check-config) without running them."""
        self.ran.append(args)
        if as_service_user and self.service_user() is None:
            raise AgentError(f"there is no user {SERVICE_USER} on this host")
        if self.failing & set(args):
            raise AgentError(f"{what or args[0]} failed: exit status 1")
        if "check-config" in args:
            manifest = json.loads((Path(args[0]).parents[2] / MANIFEST).read_text())
            if manifest["commit"] in self.unconfigurable:
                raise AgentError(f"{what} failed: HELIONYX_API_TOKEN is not set")
        if "rebuild-projections" in args:
            self._take(self.rebuild_takes, on_tick)
            configured = (env or {}).get("PROJECTIONS_DB_PATH")
            if configured:
                model = self._read_model(Path(args[0]).parents[2], configured)
                model.parent.mkdir(parents=True, exist_ok=True)
                model.write_text("built")
            return "rebuilt projections\n"
        if args[1:3] == ["-m", "venv"]:
            (Path(args[3]) / "bin").mkdir(parents=True)
            (Path(args[3]) / "bin" / "python").write_text("#!/bin/false\n")
        return ""

    def _take(self, seconds: float, on_tick: Ticker | None) -> None:
        """A program's run time on the clock, told to `on_tick` once a second as it passes."""
        started = self.now
        while self.now - started + 1 < seconds:
            self.sleep(1)
            if on_tick is not None:
                on_tick(round(self.now - started, 1))
        self.sleep(seconds - (self.now - started))

    def _read_model(self, release: Path, configured: str) -> Path:
        """Where the service of `release` keeps its read model (its own naming rule)."""
        manifest = json.loads((release / MANIFEST).read_text())
        schema = of_manifest(manifest)["projections"]
        return read_model_path(Path(configured), schema)

    def systemctl(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        self.systemctl_calls.append(args)
        verb, names = args[0], [a for a in args[1:] if not a.startswith("--")]
        if verb == "daemon-reload":
            return 0, ""
        for name in names:
            if verb == "is-active":
                return (0 if self._unit(name).active == "active" else 3), ""
            if not (self.units_dir / name).is_file():
                return _refusal(verb, name)
            missing = next((r for r in self._requires(name) if not self._exists(r)), None)
            if missing and verb in ("start", "restart"):
                return 5, f"Failed to {verb} {name}: Unit {missing} not found."
            if verb in ("start", "restart"):
                for required in self._requires(name):
                    self._begin(required, again=False)
                self._begin(name, again=verb == "restart")
            elif verb == "stop":
                self.units[name] = Unit()
                self._quiet(name)
            elif verb == "kill":
                self._died(name, "signal")
            elif verb == "reset-failed" and self._unit(name).active == "failed":
                self.units[name] = Unit()
        return 0, ""

    def _exists(self, name: str) -> bool:
        return (self.units_dir / name).is_file()

    def _unit(self, name: str) -> Unit:
        return self.units.get(name, Unit())

    def _directive(self, name: str, key: str) -> list[str]:
        text = (self.units_dir / name).read_text() if self._exists(name) else ""
        return [li.split("=", 1)[1].strip() for li in text.splitlines() if li.startswith(f"{key}=")]

    def _requires(self, name: str) -> list[str]:
        return [r for line in self._directive(name, "Requires") for r in line.split()]

    def _begin(self, name: str, *, again: bool) -> None:
        """Start `name` (a manual start: the restart count starts over)."""
        if self._unit(name).active == "active" and not again:
            return
        self.units[name] = Unit("active", "running")
        stem, _, kind = name.rpartition(".")
        service = self.services.get(stem)
        if kind == "service" and service is not None:
            self._run_release(name, service)

    def _quiet(self, name: str) -> None:
        service = self.services.get(name.rpartition(".")[0])
        if service is not None and name.endswith(".service"):
            service.serving = None

    def _died(self, name: str, result: str) -> None:
        """The unit's process ended badly: failed, or restarted later if its unit says so."""
        self._quiet(name)
        unit = self._unit(name)
        if "on-failure" not in self._directive(name, "Restart"):
            self.units[name] = Unit("failed", "failed", result, unit.restarts)
            return
        self.units[name] = Unit("activating", "auto-restart", result, unit.restarts)
        delay = float((self._directive(name, "RestartSec") or ["0.1"])[-1])
        self.after(delay, lambda: self._restarted(name, unit.restarts + 1))

    def _restarted(self, name: str, count: int) -> None:
        if self._unit(name).sub != "auto-restart":
            return  # stopped or started by hand meanwhile
        self.units[name] = Unit("active", "running", "success", count)
        service = self.services.get(name.rpartition(".")[0])
        if service is not None:
            self._run_release(name, service)

    def _run_release(self, name: str, service: Service) -> None:
        """The service process of what `current` points at, as it starts."""
        service.starts += 1
        service.probes = 0
        try:
            manifest = json.loads((service.base / "current" / MANIFEST).read_text())
        except OSError:
            return self._died(name, "exit-code")
        settings = read_env_file(self.root / "etc" / "helionyx" / f"{service.env}.env")
        if "PROJECTIONS_DB_PATH" in settings:
            # Like the service: a missing read model is created (and caught up) at start.
            configured = Path(settings["PROJECTIONS_DB_PATH"])
            model = self._read_model(service.base / "current", str(configured))
            events = Path(settings.get("EVENT_STORE_PATH", configured.parents[1] / "events"))
            if _refuses_log(manifest, events):
                # It refuses a log it cannot read, unless a forced rollback left it the record.
                try:
                    forced = json.loads((configured.parent / FORCED_READ).read_text())["commit"]
                except OSError:
                    forced = None
                if forced != manifest["commit"]:
                    return self._died(name, "exit-code")
                schema = of_manifest(manifest)["projections"]
                model = forced_read_model_path(configured, schema)
            model.parent.mkdir(parents=True, exist_ok=True)
            model.touch()
        if manifest["commit"] in self.broken:
            return self._died(name, "exit-code")
        service.serving = (manifest["version"], manifest["commit"])
        return None

    def unit_state(self, unit: str) -> dict[str, str]:
        name = f"{unit}.service"
        state = self._unit(name)
        return {
            "ActiveState": state.active,
            "SubState": state.sub,
            "Result": state.result,
            "NRestarts": str(state.restarts),
            "LoadState": "loaded" if self._exists(name) else "not-found",
        }

    def journal(self, unit: str, lines: int) -> list[str]:
        if self._unit(f"{unit}.service").result != "success":
            return [f"{unit}: deliberately broken release"]
        return [f"{unit}: started"]

    def probe(self, port: int, path: str, timeout: float = 2.0) -> Probe:
        name, service = next(
            ((f"{n}.service", s) for n, s in self.services.items() if s.port == port),
            ("", None),
        )
        if service is None or service.serving is None:
            return 0, None, "[Errno 111] Connection refused"
        version, commit = service.serving
        service.probes += 1
        if commit in self.crashing and service.probes > 3:
            self._died(name, "exit-code")
            return 0, None, "[Errno 111] Connection refused"
        errors = max(0, service.probes - 3) if commit in self.erroring else 0
        return 200, {"version": version, "commit": commit, "server_errors": errors}, ""

    def service_user(self) -> tuple[int, int] | None:
        return (os.getuid(), os.getgid()) if self.user else None

    def add_service_user(self) -> None:
        self.user = True

    def chown(self, path: Path, *, to_root: bool = False) -> None:
        """Checked as the host checks it; nothing is given away (the tests run without root)."""
        if not to_root and self.service_user() is None:
            raise AgentError(f"there is no user {SERVICE_USER} on this host")


def _refusal(verb: str, name: str) -> tuple[int, str]:
    """What systemctl answers for a unit that has no unit file (seen on the node)."""
    if verb in ("start", "restart"):
        return 5, f"Failed to {verb} {name}: Unit {name} not found."
    if verb == "enable":
        return 1, f"Failed to enable unit: Unit file {name} does not exist."
    if verb == "stop":
        return 5, f"Failed to stop {name}: Unit {name} not loaded."
    if verb == "reset-failed":
        return 1, f"Failed to reset failed state of unit {name}: Unit {name} not loaded."
    return 1, f"Failed to {verb} unit {name}: Unit {name} not loaded."


def _refuses_log(manifest: dict[str, Any], events: Path) -> bool:
    """The service's own rule at start (`Event.from_dict`: every line parsed, a version above
    what the release reads stops it), with the release's readable versions taken from its
    manifest, as the pretend releases have no code; not the agent's `contract` under test."""
    contract = manifest.get("data_contract") or {}
    reads = {kind: entry["reads"] for kind, entry in contract.get("events", {}).items()}
    for path in sorted(events.glob("*.jsonl")) if events.is_dir() else []:
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["schema_version"] > reads.get(event["event_type"], 1):
                return True
    return False


class InProcessSession:
    """An agent 'process': each line goes to the real agent's `handle`. The operator's wait
    for a line is measured on the fake's clock: past it, the answer is lost as over SSH."""

    def __init__(self, system: FakeSystem, host: str = "node1") -> None:
        self.system = system
        self.host = host
        self.greeted = False
        self.requests: list[str] = []
        self.pending: list[tuple[float, str]] = []
        self.last = system.now

    def receive(self, *, timeout: float | None = 30.0) -> str:
        if self.greeted:
            return self._next(timeout)
        self.greeted = True
        refused = too_old(self.system.host_platform)
        if refused is not None:  # what the loader answers on such a python3, then exits
            return json.dumps(refused)
        hello = {"agent": os.getpid(), "platform": self.system.platform()}
        return json.dumps({"ok": True, "result": hello})

    def ask(self, line: str, *, timeout: float | None = None) -> str:
        message = json.loads(line)
        self.requests.append(message["command"])
        self.last = self.system.now
        # The agent's progress lines come first, as they would down the pipe.
        answer = handle(message, self.system, self._report)
        self.pending.append((self.system.now, json.dumps(answer)))
        return self._next(timeout)

    def _next(self, timeout: float | None) -> str:
        at, line = self.pending[0]
        if timeout is not None and at - self.last > timeout:
            self.pending.clear()
            raise SessionClosed(f"no answer within {timeout} s", host=self.host)
        self.pending.pop(0)
        self.last = at
        return line

    def _report(self, progress: Progress) -> None:
        self.pending.append((self.system.now, json.dumps({"progress": progress})))

    def close(self) -> None:
        pass


@dataclass
class InProcessRemote:
    """The transport: agent sessions in-process, files copied, shell commands run locally."""

    system: FakeSystem
    host: str = "node1"
    sessions: list[InProcessSession] = field(default_factory=list)

    def start(self, command: str, *, stdin_first: str = "") -> InProcessSession:
        assert stdin_first == AGENT_BUNDLE, "the agent travels on stdin"
        self.sessions.append(InProcessSession(self.system, self.host))
        return self.sessions[-1]

    def run(self, command: str, *, timeout: float | None = None) -> Result:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
        return Result(done.returncode, done.stdout, done.stderr)

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def stream(self, command: str) -> int:
        return 0

    def close(self) -> None:
        pass


class Notes:
    """A Reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.progressed: list[Progress] = []

    def headline(self, message: str) -> None:
        self.lines.append(message)

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        self.lines.append(f"step {name}: {detail}")

    def note(self, message: str) -> None:
        self.lines.append(message)

    def progress(self, progress: Progress) -> None:
        self.progressed.append(progress)


@dataclass
class PretendHost:
    """A temporary `/` with the fake machine, the envs on it and a store of artifacts."""

    root: Path
    system: FakeSystem
    workspace: Path
    store: DirStore
    remotes: list[InProcessRemote] = field(default_factory=list)
    known: dict[str, Environment] = field(default_factory=dict)

    def env(self, name: str = "dev", **changes: object) -> Environment:
        """The repository's env definition with every host path under the temporary root."""
        env = load(REPO, name, environ={})
        # No staging gate and no watch unless a test asks (`requires=`, `soak=`, `watch=`).
        changes = {"requires": None, "soak": 0.0, "watch": 0.0, **changes}
        env = replace(
            env,
            base_dir=str(self.root / "opt" / "helionyx" / name),
            data_dir=str(self.root / "var" / "lib" / "helionyx" / name),
            config_file=str(self.root / "etc" / "helionyx" / f"{name}.env"),
            health_timeout=0.3,
            **changes,  # type: ignore[arg-type]
        )
        self.system.add(env)
        self.known[name] = env
        return env

    def context(
        self,
        env: Environment,
        notes: Notes | None = None,
        *,
        clock: Clock | None = None,
        **options: Any,
    ) -> Context:
        """What a host command gets from the CLI, reaching this host in-process."""
        return Context(
            root=self.workspace,
            env=env,
            reporter=notes or Notes(),
            remote_factory=self.remote,
            progress=NoProgress(),
            clock=clock or SystemClock(),
            options=Options(**options),
            environments=self.peer,
        )

    def deploy(
        self, env: Environment, version: str, notes: Notes | None = None, **options: Any
    ) -> DeployResult:
        """`make deploy` through the real operator code and this host's transport."""
        return deploy(self.context(env, notes, **options), version, self.store)

    def promote(self, source: Environment, target: Environment, **options: Any) -> DeployResult:
        """`make promote` through the real operator code and this host's transport."""
        return promote(self.context(target, **options), source, self.store)

    def peer(self, name: str) -> Environment:
        """An env of this host by name (how the staging gate and the CLI find envs): the one a
        test made, or the project's own definition moved under this host's root."""
        return self.known[name] if name in self.known else self.env(name)

    def remote(self, env: Environment) -> InProcessRemote:
        """The remote factory operations take."""
        self.remotes.append(InProcessRemote(self.system, env.host))
        return self.remotes[-1]

    def set_up(self, env: Environment) -> list[str]:
        """`make setup-host` through the real setup code and the real agent."""
        settings = self.workspace / f".env.{env.name}"
        if not settings.exists():
            fill_settings(
                REPO / f".env.{env.name}.example", settings, {"HELIONYX_API_TOKEN": TOKEN}
            )
        return setup_host(self.context(env), settings)

    def artifact(
        self,
        version: str,
        *,
        lock: str = "fastapi==1.0\n",
        tag: bool = True,
        contract: DataContract | None = None,
        targets: TargetsRecord | None = None,
        wheels: tuple[str, ...] = (),
    ) -> str:
        """A small artifact in the store (wheel, lock, wheelhouse with `wheels` besides a pure
        one, manifest, SHA256SUMS); returns its commit."""
        commit = (version.replace(".", "") * 40)[:40].ljust(40, "0")
        directory = self.store.root / version
        (directory / "wheelhouse").mkdir(parents=True)
        (directory / f"helionyx-{version}-py3-none-any.whl").write_text(f"wheel {version}\n")
        (directory / "requirements.lock").write_text(lock)
        (directory / "wheelhouse" / "fastapi-1.0-py3-none-any.whl").write_text(lock)
        for wheel in wheels:
            (directory / wheel).parent.mkdir(parents=True, exist_ok=True)
            (directory / wheel).write_text(f"{wheel}\n")
        files = tuple(
            FileEntry(p, (directory / p).stat().st_size, sha256_file(directory / p))
            for p in artifact_files(directory)
        )
        manifest = Manifest(
            schema_version=1,
            name="helionyx",
            version=version,
            tag=f"v{version}" if tag else None,
            commit=commit,
            built_at=f"2026-12-01T00:00:{len(list(self.store.root.iterdir())):02d}Z",
            python_requires=">=3.11",
            platform="cp3.11-manylinux_2_36_x86_64",
            files=files,
            data_contract=contract,
            targets=targets,
        )
        write_manifest(directory, manifest)
        return commit

    def current(self, env: Environment) -> str | None:
        link = Path(env.base_dir) / "current"
        return link.readlink().name if link.is_symlink() else None

    def releases(self, env: Environment) -> set[str]:
        releases = Path(env.base_dir) / "releases"
        return {p.name for p in releases.iterdir() if not p.name.startswith(".")}

    def write_events(self, env: Environment, *events: tuple[str, int]) -> None:
        """Events in the env's log, as a release that writes those versions would append them."""
        directory = Path(env.data_dir) / "events"
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "events-2026-12-01.jsonl").open("a") as handle:
            for number, (kind, version) in enumerate(events):
                event = {"event_id": f"e{number}", "event_type": kind, "schema_version": version}
                event.update(occurred_at=f"2026-12-01T10:00:{number:02d}Z", payload={})
                handle.write(json.dumps(event) + "\n")

    def log(self, env: Environment) -> list[dict[str, object]]:
        path = Path(env.base_dir) / "deploy-log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def pretend_host(tmp: Path) -> PretendHost:
    """A new pretend host under `tmp`."""
    workspace = tmp / "workspace"
    workspace.mkdir(parents=True)
    # The units are rendered from the repository's templates; nothing in it is written.
    (workspace / "deployment").symlink_to(REPO / "deployment")
    (workspace / "pyproject.toml").symlink_to(REPO / "pyproject.toml")
    return PretendHost(tmp / "root", FakeSystem(tmp / "root"), workspace, DirStore(tmp / "store"))

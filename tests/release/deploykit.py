"""Driving real deploys for tests: the test node, a project with releases, the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import httpx

from release.hosts.setup import fill_settings
from tests.helionyx.servicekit import poll
from tests.release.conftest import REPO, Result, git, make_project_repo, release_cli

TOKEN = "node-test-token-0123456789abcdef"
ENVS = ("dev", "staging", "live")
PORTS = {"dev": 8000, "staging": 8001, "live": 8002}


def _load_testnode() -> ModuleType:
    path = REPO / "deployment" / "testnode" / "testnode.py"
    spec = importlib.util.spec_from_file_location("helionyx_testnode", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


testnode = _load_testnode()


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the test-node harness as `make testnode-*` does."""
    return subprocess.run(
        [sys.executable, str(REPO / "deployment" / "testnode" / "testnode.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@dataclass
class NodeHandle:
    """The booted node and how to reach it."""

    env: dict[str, str]
    node: Any = field(default_factory=testnode.Node)

    def ssh(self, command: str, *, check: bool = True, timeout: float = 60) -> str:
        """Run a shell command on the node as root."""
        done = subprocess.run(
            self.node_command(command), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"on the node: {command!r} failed: {done.stderr.strip()}")
        return done.stdout

    def cut_ssh(self) -> int:
        """Kill the node's SSH sessions from this machine (the node's network may be slowed
        to a crawl); returns how many were cut."""
        cut = 0
        for proc in Path("/proc").iterdir():
            try:
                in_node = f"machine-{self.node.name}" in (proc / "cgroup").read_text()
                session = (proc / "cmdline").read_bytes().startswith(b"sshd: root")
            except (OSError, ValueError):
                continue
            if in_node and session:
                os.kill(int(proc.name), signal.SIGKILL)
                cut += 1
        return cut

    def path(self, inside: str) -> Path:
        """A path on the node's disk, seen from this machine."""
        return Path(self.node.merged) / inside.lstrip("/")

    def node_command(self, command: str) -> list[str]:
        """argv for ssh to the node."""
        return list(testnode.ssh_command(self.node, command))

    def http(self, env: str, path: str, token: bool = False) -> tuple[int, Any]:
        """GET an endpoint of an env's service from inside the node."""
        auth = f"-H 'Authorization: Bearer {TOKEN}'" if token else ""
        out = self.ssh(
            f"curl -s -o /tmp/body -w '%{{http_code}}' {auth} "
            f"http://127.0.0.1:{PORTS[env]}{path}; echo; cat /tmp/body",
            check=False,
        )
        code, _, body = out.partition("\n")
        try:
            return int(code or 0), json.loads(body) if body.strip() else None
        except ValueError:
            return int(code or 0), body

    def ingest(self, env: str, text: str) -> str:
        """POST a message to an env's service on the node; returns the event id."""
        payload = json.dumps({"text": text}).replace("'", "'\\''")
        out = self.ssh(
            f"curl -sf -X POST -H 'Authorization: Bearer {TOKEN}' "
            f"-H 'Content-Type: application/json' -d '{payload}' "
            f"http://127.0.0.1:{PORTS[env]}/api/v1/ingest/message"
        )
        event_id: str = json.loads(out)["event_id"]
        return event_id

    def listing(self) -> str:
        """Files under the deploy-managed trees with size and mtime; equal means unchanged."""
        return self.ssh(
            "find /opt/helionyx /etc/helionyx /etc/systemd/system -xdev "
            "-printf '%p %s %T@ %l\\n' 2>/dev/null | sort",
            check=False,
        )

    def current(self, env: str) -> str | None:
        """The release `current` points at."""
        out = self.ssh(f"readlink /opt/helionyx/{env}/current", check=False).strip()
        return out.rsplit("/", 1)[-1] or None


def boot_fresh(name: str = "node1", index: int = 0, suite: str | None = None) -> NodeHandle:
    """A clean node: down (dropping its overlay) and up again (with Debian `suite`)."""
    which = ["--name", name, "--index", str(index)]
    harness(*which, "down")
    started = harness(*which, *(["--suite", suite] if suite else []), "up")
    assert started.returncode == 0, started.stderr
    lines = harness(*which, "env").stdout.splitlines()
    env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    return NodeHandle(env, testnode.Node(name, index))


@dataclass
class Project:
    """A throwaway copy of this project with releases built into its local store."""

    repo: Path
    shas: dict[str, str] = field(default_factory=dict)
    dev_builds: list[str] = field(default_factory=list)

    @property
    def store(self) -> str:
        """The local store spec."""
        return f"dir:{self.repo / 'dist' / 'releases'}"

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        """`python -m release --repo PROJECT …`."""
        return release_cli(self.repo, *args, env=env)

    def env_file(self, env: str) -> Path:
        """A filled-in settings file for `env`."""
        path = self.repo / f".env.{env}"
        if not path.exists():
            fill_settings(REPO / f".env.{env}.example", path, {"HELIONYX_API_TOKEN": TOKEN})
        return path

    def commit(
        self, message: str, changelog: str, edit: tuple[str, str, str] | None = None
    ) -> None:
        """Commit a change with a CHANGELOG entry (and optionally a source edit)."""
        log = self.repo / "CHANGELOG.md"
        log.write_text(
            log.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {changelog}\n", 1)
        )
        changed = ["CHANGELOG.md"]
        if edit is not None:
            path, old, new = edit
            target = self.repo / path
            text = target.read_text()
            assert old in text, f"{old!r} not in {path}"
            target.write_text(text.replace(old, new, 1))
            changed.append(path)
        # Only what this commit changes: a test's passing edit of a TOML must not be kept.
        git(self.repo, "commit", "--quiet", "-m", message, "--", *changed)

    def release(self, version: str) -> str:
        """`make release VERSION=…`; returns the commit SHA."""
        result = self.cli("release", "--version", version)
        assert result.code == 0, result.stderr
        sha = git(self.repo, "rev-parse", "HEAD")
        self.shas[version] = sha
        return sha

    def dev_build(self, label: str) -> str:
        """Commit a harmless change and `make artifact`; returns the dev build's SHA."""
        (self.repo / "NOTES.txt").write_text(f"{label}\n")
        git(self.repo, "add", "NOTES.txt")
        git(self.repo, "commit", "--quiet", "-m", f"chore: {label}")
        result = self.cli("artifact")
        assert result.code == 0, result.stderr
        sha = git(self.repo, "rev-parse", "HEAD")
        self.dev_builds.append(sha)
        return sha


BREAK_AT_START = (
    "src/helionyx/server.py",
    "    reporter = handover.Reporter()\n",
    "    reporter = handover.Reporter()\n    raise SystemExit('deliberately broken release')\n",
)


NEVER_READY = (
    "src/helionyx/server.py",
    "        checks = [telegram.readiness]\n",
    "        checks = [telegram.readiness, lambda: 'deliberately never ready']\n",
)


def never_ready_build(project: Project) -> str:
    """A dev build whose /health/ready never passes (committed, built, then undone)."""
    project.commit("feat: never ready", "Never ready.", NEVER_READY)
    sha = project.dev_build("never ready")
    undo = (NEVER_READY[0], NEVER_READY[2], NEVER_READY[1])
    project.commit("fix: ready again", "Ready again.", undo)
    return sha


def build_project(target: Path) -> Project:
    """v0.1.0, v0.2.0 (good) and v0.2.1 (exits at start-up), then the fix committed."""
    project = Project(make_project_repo(target))
    project.release("0.1.0")
    project.commit("feat: second", "Second release.", None)
    project.release("0.2.0")
    project.commit("feat: broken", "A release that cannot start.", BREAK_AT_START)
    project.release("0.2.1")
    old, new = BREAK_AT_START[2], BREAK_AT_START[1]
    project.commit("fix: start again", "Starts again.", (BREAK_AT_START[0], old, new))
    return project


def setup_env(project: Project, node: NodeHandle, env: str) -> None:
    """`make setup-host ENV=env` against the node."""
    result = project.cli(
        "setup-host", "--env", env, "--env-file", str(project.env_file(env)), env=node.env
    )
    assert result.code == 0, result.stderr


def deploy_args(project: Project, env: str, version: str) -> list[str]:
    """The CLI arguments of `make deploy ENV=env VERSION=version` from the project's store."""
    return ["deploy", "--env", env, "--version", version, "--store", project.store]


def deploy(project: Project, node: NodeHandle, env: str, version: str, **extra: str) -> Result:
    """`make deploy ENV=env VERSION=version` against the node."""
    return project.cli(*deploy_args(project, env, version), env={**node.env, **extra})


def status_json(project: Project, node: NodeHandle, env: str) -> tuple[int, dict[str, Any]]:
    """`make status ENV=env FORMAT=json`."""
    result = project.cli("status", "--env", env, "--format", "json", env=node.env)
    return result.code, json.loads(result.stdout)


@dataclass
class Background:
    """A deploy running in the background, to be raced or killed."""

    process: subprocess.Popen[str]
    stderr_path: Path

    def stderr(self) -> str:
        """What it wrote to stderr so far."""
        return self.stderr_path.read_text()

    def resume(self, timeout: float = 300) -> int:
        """Let a paused deploy go on (SIGUSR1) and wait for its exit code."""
        self.process.send_signal(signal.SIGUSR1)
        return self.process.wait(timeout=timeout)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Poll its stderr until `text` shows up."""

        def seen() -> bool | None:
            if self.process.poll() is not None and text not in self.stderr():
                raise AssertionError(f"exited {self.process.returncode}: {self.stderr()}")
            return True if text in self.stderr() else None

        poll(seen, timeout, repr(text))

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to its whole process group, as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL, as a crash or an operator's kill -9 would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def deploy_in_background(
    project: Project,
    node: NodeHandle,
    env: str,
    version: str,
    log: Path,
    *flags: str,
    **extra: str,
) -> Background:
    """Start `python -m release deploy` without waiting for it."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **node.env, **extra}
    process = subprocess.Popen(
        [
            *AS_FROM_A_TERMINAL,
            "--repo",
            str(project.repo),
            *deploy_args(project, env, version),
            *flags,
        ],
        stdout=log.with_suffix(".out").open("w"),
        stderr=log.open("w"),
        env=environ,
        text=True,
        # Its own process group, like a job started from a shell: Ctrl-C reaches all of it.
        process_group=0,
    )
    return Background(process, log)


#: `python -m release` with SIGINT at its default, as a shell's foreground job has it: a suite
#: started from a background job (`bash .ci/run &`) runs with SIGINT ignored, a child inherits
#: that, and the CLI rightly keeps an inherited ignore, so Ctrl-C would never arrive. The
#: disposition is set before exec, which keeps it; Python then installs its own handler.
AS_FROM_A_TERMINAL = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'release', *sys.argv[1:]])",
)


def wait_until(check: Any, timeout: float, what: str) -> Any:
    """poll() re-exported for the deploy tests."""
    return poll(check, timeout, what)


@dataclass
class Workers:
    """Threads that each run `work(number)` (until `stopping`) while the `with` block runs."""

    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def count(self) -> int:
        raise NotImplementedError

    def work(self, number: int) -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> Self:
        for number in range(self.count()):
            thread = threading.Thread(target=self.work, args=(number,))
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@dataclass
class IngestLoad(Workers):
    """Writers posting messages to an env's API on the node; `acknowledged` holds the ids the
    API answered 201 for (the events that must never be lost)."""

    url: str
    writers: int = 6
    acknowledged: list[str] = field(default_factory=list)

    def count(self) -> int:
        return self.writers

    def work(self, number: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            sent = 0
            while not self.stopping:
                sent += 1
                try:
                    answer = client.post(self.url, json={"text": f"writer {number} message {sent}"})
                except httpx.HTTPError:
                    continue  # not acknowledged: it may or may not be in the log
                if answer.status_code == 201:
                    self.acknowledged.append(answer.json()["event_id"])

    def wait_for_more(self, count: int, timeout: float = 30) -> None:
        """Poll until `count` more writes than now were acknowledged."""
        target = len(self.acknowledged) + count
        poll(lambda: len(self.acknowledged) >= target or None, timeout, f"{count} more writes")


def ingest_url(node: NodeHandle, env: str) -> str:
    """The ingest endpoint of an env set up with DEPLOY_LISTEN_ADDRESS=0.0.0.0."""
    return f"http://{node.env['DEPLOY_HOST']}:{PORTS[env]}/api/v1/ingest/message"


def event_ids(node: NodeHandle, env: str) -> list[str]:
    """Every event id in an env's log in log order, each line parsed (a torn one fails)."""
    lines = node.ssh(f"cat /var/lib/helionyx/{env}/events/events-*.jsonl").splitlines()
    return [json.loads(line)["event_id"] for line in lines if line.strip()]

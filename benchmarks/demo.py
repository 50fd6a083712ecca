"""`make demo`: the whole pipeline on a throwaway node on this machine, start to finish.

Boots the test node, builds two releases of the working tree in a scratch clone, sets up `dev`,
deploys the first, ingests messages, deploys the second, shows the status, rolls back, shows
that every message survived, and prints the timings. `make demo-clean` removes what it made.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from release.artifacts.git import snapshot_work_tree
from release.hosts.setup import fill_settings

REPO = Path(__file__).resolve().parents[1]
# Under /var/tmp beside the test node's cache, outside the repository (it holds a token file).
SCRATCH = Path(os.environ.get("HELIONYX_DEMO_DIR", "/var/tmp/helionyx-demo"))  # noqa: S108
TESTNODE = REPO / "deployment" / "testnode" / "testnode.py"


class DemoFailed(Exception):
    """A demo step failed; its output was already shown."""


def banner(text: str) -> None:
    """A step heading."""
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, secret: str = ""
) -> str:
    """Run a command, echo it (with `secret` masked) and its output; fail the demo if it fails."""
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown.replace(secret, '***') if secret else shown}", flush=True)
    done = subprocess.run(
        args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (done.stdout + done.stderr).rstrip()
    if output:
        print(output, flush=True)
    if done.returncode != 0:
        raise DemoFailed(f"`{args[0]} {args[1] if len(args) > 1 else ''}` exited {done.returncode}")
    return done.stdout


def copy_working_tree(target: Path) -> None:
    """The working tree as a fresh scratch repository."""
    if target.exists():
        shutil.rmtree(target)
    snapshot_work_tree(REPO, target, "demo: the working tree")


def add_unreleased_entry(project: Path, text: str) -> None:
    """Give the next release something to say, then commit it."""
    log = project / "CHANGELOG.md"
    log.write_text(
        log.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {text}\n", 1)
    )
    subprocess.run(["git", "commit", "--quiet", "-am", text], cwd=project, check=True)


def on_node(command: str, secret: str = "") -> str:
    """Run a command on the node (the service listens on the node's loopback only)."""
    return run(sys.executable, str(TESTNODE), "ssh", command, secret=secret)


class Demo:
    """The demo's steps, sharing the project, the node's settings and the timings."""

    def __init__(self) -> None:
        self.project = SCRATCH / "project"
        self.timings: list[tuple[str, float]] = []
        self.env: dict[str, str] = {"PYTHONPATH": str(REPO)}
        self.cli = [sys.executable, "-m", "release", "--repo", str(self.project)]
        self.token = secrets.token_urlsafe(24)
        self.auth = f"-H 'Authorization: Bearer {self.token}' -H 'Content-Type: application/json'"

    def timed(self, label: str, *args: str) -> str:
        """Run a release command, remembering how long it took."""
        started = time.monotonic()
        output = run(*self.cli, *args, env=self.env)
        self.timings.append((label, time.monotonic() - started))
        return output

    def boot(self) -> None:
        """Boot node1 and take its DEPLOY_* settings."""
        banner("1. Boot node1: Debian 12, systemd as PID 1, OpenSSH, its own network namespace")
        started = time.monotonic()
        # Down first: every demo starts from a clean node (a fresh overlay on the cached root).
        run(sys.executable, str(TESTNODE), "down")
        run(sys.executable, str(TESTNODE), "up")
        for line in run(sys.executable, str(TESTNODE), "env").splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value
        self.timings.append(("boot the test node", time.monotonic() - started))

    def build(self) -> None:
        """Two tagged releases of the working tree in a scratch clone."""
        banner("2. Build two releases of the working tree in a scratch clone")
        copy_working_tree(self.project)
        add_unreleased_entry(self.project, "Demo release one.")
        self.timed("release + build v0.1.0", "release", "--version", "0.1.0")
        add_unreleased_entry(self.project, "Demo release two.")
        self.timed("release + build v0.2.0", "release", "--version", "0.2.0")
        run(*self.cli, "list", env=self.env)

    def set_up(self) -> None:
        """`make setup-host ENV=dev` with a generated token in a 0600 file."""
        banner("3. Set up dev on node1 (user, dirs, 0600 settings, systemd unit)")
        fill_settings(
            self.project / ".env.dev.example",
            self.project / ".env.dev",
            {"HELIONYX_API_TOKEN": self.token},
        )
        self.timed("set up dev", "setup-host", "--env", "dev")

    def deploy(self, version: str) -> None:
        """`make deploy ENV=dev VERSION=…` from the scratch clone's store."""
        store = f"dir:{self.project / 'dist' / 'releases'}"
        self.timed(
            f"deploy {version}", "deploy", "--env", "dev", "--version", version, "--store", store
        )

    def api(self, method: str, path: str, body: dict[str, str] | None = None) -> str:
        """Call the service's API from inside the node (it listens on the node's loopback)."""
        data = f" -d '{json.dumps(body)}'" if body else ""
        command = f"curl -sf -X {method} {self.auth}{data} http://127.0.0.1:8000{path}"
        return on_node(command, secret=self.token)

    def run_all(self) -> int:
        """Every step in order; the summary at the end."""
        self.boot()
        self.build()
        self.set_up()
        banner("4. Deploy v0.1.0")
        self.deploy("v0.1.0")
        banner("5. Ingest messages through the API")
        for text in ("todo: water the plants", "note: the demo works", "todo: call the plumber"):
            self.api("POST", "/api/v1/ingest/message", {"text": text})
        banner("6. Deploy v0.2.0 and ingest one more")
        self.deploy("v0.2.0")
        self.api("POST", "/api/v1/ingest/message", {"text": "todo: written on v0.2.0"})
        banner("7. Status")
        run(*self.cli, "status", "--env", "dev", env=self.env)
        banner("8. Roll back")
        self.timed("roll back to v0.1.0", "rollback", "--env", "dev")
        banner("9. Every message survived")
        state = json.loads(self.api("GET", "/api/v1/state"))
        messages = state["events"]["by_type"].get("MessageIngested", 0)
        todos = self.api("GET", "/api/v1/todos")
        run(*self.cli, "releases", "--env", "dev", env=self.env)
        banner("Summary")
        for label, seconds in self.timings:
            print(f"  {label:<24} {seconds:6.2f} s")
        survived = messages == 4 and "written on v0.2.0" in todos
        print(f"  messages ingested: 4, present after the rollback: {messages}")
        print('\nnode1 is still up: eval "$(make -s testnode-env)" && make status ENV=dev')
        print("make demo-clean shuts it down and removes the scratch clone.")
        return 0 if survived else 1


def main() -> int:
    """Run the demo; returns the exit code."""
    try:
        return Demo().run_all()
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1


def clean() -> int:
    """Shut the node down and remove the scratch clone."""
    subprocess.run([sys.executable, str(TESTNODE), "down"], check=False)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"removed {SCRATCH}")
    return 0


if __name__ == "__main__":
    sys.exit(clean() if sys.argv[1:] == ["clean"] else main())

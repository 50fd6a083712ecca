"""Deploy benchmark on the test node: Helionyx against the service's floor and the in-place way.

    make bench            (root; boots the test node; about four minutes)

Measures, each as median / min / max of REPS repetitions:
1. floor: a bare `systemctl restart` until /health/ready answers (the service's cold start);
2. Helionyx: deploy of a prebuilt release (a new SHA each time), no-op redeploy, rollback;
3. baseline, the in-place way of the original deploy guide: one shared venv per env,
   `pip install --upgrade` of the new wheel from the same wheelhouse, restart;
4. failed requests, connection resets, p99 and worst latency under the same steady load during
   2 and 3 and during restarts, beside the steady state's p99 in the same run, taken in a
   window before each of them (the hand-over's target: worst <= steady p99 + 50 ms, 0 failed,
   0 resets);
5. dev as an env of three nodes (benchmarks/hosts_bench.py): deploy and rollback time against
   one node's, the gap between the first and the last host switching, failed requests.
Prints a table and the ratios, and writes them to benchmarks/results/latest.json. It reports; it
does not pass or fail.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.hosts_bench import ThreeHosts
from benchmarks.loadgen import Load, Phase, ports_reused
from release.artifacts.git import snapshot_work_tree
from release.hosts.setup import fill_settings

REPO = Path(__file__).resolve().parents[1]
TESTNODE = REPO / "deployment" / "testnode" / "testnode.py"
RESULTS = REPO / "benchmarks" / "results" / "latest.json"
REPS = int(os.environ.get("BENCH_REPS", "5"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "20"))
BASELINE_PORT = 8010
MIGRATION_EVENTS = int(os.environ.get("BENCH_MIGRATION_EVENTS", "100000"))
MIGRATION_REPS = int(os.environ.get("BENCH_MIGRATION_REPS", "3"))
STEADY_SECONDS = 2.0
#: Deploys, rollbacks and restarts hand the socket over: worst latency <= steady p99 + this.
HANDOVER_MARGIN = 0.05


@dataclass
class Figure:
    """Repeated timings of one operation, and what the load saw meanwhile."""

    name: str
    seconds: list[float] = field(default_factory=list)
    failed: int = 0
    requests: int = 0
    worst_latency: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    #: The longest time from a repetition's first failed request to its last.
    longest_outage: float = 0.0
    latencies: list[float] = field(default_factory=list)
    #: Each repetition's slowest request, in seconds.
    worsts: list[float] = field(default_factory=list)

    def add_load(self, phase: Phase) -> None:
        """Fold one phase of load into this figure."""
        self.failed += phase.failed
        self.longest_outage = max(self.longest_outage, phase.outage)
        for kind, count in phase.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + count
        self.requests += phase.requests
        self.worst_latency = max(self.worst_latency, phase.worst)
        self.worsts.append(phase.worst)
        self.latencies.extend(phase.latencies)

    @property
    def p99(self) -> float:
        """The 99th percentile latency of every request the load sent meanwhile."""
        if len(self.latencies) < 2:
            return max(self.latencies, default=0.0)
        return statistics.quantiles(self.latencies, n=100)[98]

    def over(self, limit: float) -> int:
        """How many requests took longer than `limit` seconds."""
        return sum(1 for latency in self.latencies if latency > limit)

    def reps_over(self, limit: float) -> int:
        """In how many repetitions some request took longer than `limit` seconds."""
        return sum(1 for worst in self.worsts if worst > limit)

    @property
    def resets(self) -> int:
        """Requests whose connection was reset."""
        return sum(n for kind, n in self.failures.items() if "reset" in kind)

    @property
    def median(self) -> float:
        """Median seconds."""
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def row(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "median_s": round(self.median, 3),
            "min_s": round(min(self.seconds), 3),
            "max_s": round(max(self.seconds), 3),
            "reps": len(self.seconds),
            "requests_under_load": self.requests,
            "failed_requests": self.failed,
            "failures_by_kind": self.failures,
            "worst_latency_s": round(self.worst_latency, 3),
            "p99_latency_s": round(self.p99, 3),
            "connection_resets": self.resets,
            "longest_outage_s": round(self.longest_outage, 3),
        }


def sh(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; fail loudly."""
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def on_node(command: str) -> str:
    """A shell command on the node."""
    return sh(sys.executable, str(TESTNODE), "ssh", command)


HAND_OVER = (
    "base=/opt/helionyx/dev; unit=helionyx-dev.service; "
    "main=$(systemctl show -p MainPID --value $unit); "
    """echo "{\\"sha\\": \\"$(basename $(readlink $base/current))\\", \\"timeout\\": 20}" """
    "> $base/handover.json; systemctl kill --kill-whom=main --signal=SIGHUP $unit; "
    # Until the old process is gone (it exits once the new one took over): one process
    # waiting, not a systemctl every few milliseconds competing for the CPU it measures.
    "timeout 30 tail --pid=$main -s 0.02 -f /dev/null"
)


def hand_over_on_the_node() -> None:
    """SIGHUP the dev service as the agent does, and wait until the old process has exited."""
    on_node(HAND_OVER)


def timed(action: Callable[[], object]) -> float:
    """Seconds an action took."""
    started = time.monotonic()
    action()
    return time.monotonic() - started


class Bench:
    """The scratch project, the node and the figures."""

    def __init__(self, workdir: Path) -> None:
        self.project = workdir / "project"
        self.token = secrets.token_urlsafe(24)
        self.env: dict[str, str] = {"PYTHONPATH": str(REPO), "DEPLOY_LISTEN_ADDRESS": "0.0.0.0"}
        self.builds: list[str] = []
        #: Builds whose requirements.lock differs from every other: the full venv build path.
        self.relocked: list[str] = []
        #: Builds only the two-node rows deploy.
        self.fresh: list[str] = []
        self.figures: dict[str, Figure] = {}
        self.schema2 = ""
        #: Events per second `helionyx rebuild-projections` built on the node.
        self.rebuild_rates: list[float] = []
        #: What the artifact weighs and what deploys sent to the node (the `upload` step).
        self.sizes: dict[str, str] = {}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        """`python -m release --repo PROJECT …` (with the bench's settings, or `env`)."""
        command = [sys.executable, "-m", "release", "--repo", str(self.project), *args]
        return sh(*command, env=env or self.env)

    def prepare(self) -> None:
        """A clean node, a scratch clone with REPS + 1 dev builds, dev set up."""
        print("preparing: test node, scratch clone, builds …", file=sys.stderr)
        sh(sys.executable, str(TESTNODE), "down")
        sh(sys.executable, str(TESTNODE), "up")
        for line in sh(sys.executable, str(TESTNODE), "env").splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value
        snapshot_work_tree(REPO, self.project, "bench: the working tree")
        # A new SHA for every deploy: one to start from, REPS quiet, REPS under load.
        for number in range(2 * REPS + 1):
            (self.project / "BENCH.txt").write_text(f"{number}\n")
            sh("git", "add", "BENCH.txt", cwd=self.project)
            sh("git", "commit", "--quiet", "-m", f"bench {number}", cwd=self.project)
            self.cli("artifact")
            self.builds.append(sh("git", "rev-parse", "HEAD", cwd=self.project).strip())
        # Never deployed to node1: the two-node rows deploy them (benchmarks/hosts_bench.py).
        for number in range(REPS):
            (self.project / "BENCH.txt").write_text(f"two nodes {number}\n")
            sh("git", "commit", "--quiet", "-am", f"bench: two nodes {number}", cwd=self.project)
            self.cli("artifact")
            self.fresh.append(sh("git", "rev-parse", "HEAD", cwd=self.project).strip())
        lock = self.project / "requirements" / "runtime.txt"
        pristine = lock.read_text()
        for number in range(REPS):
            lock.write_text(f"{pristine}# relocked {number}\n")
            sh("git", "commit", "--quiet", "-am", f"bench: relock {number}", cwd=self.project)
            self.cli("artifact")
            self.relocked.append(sh("git", "rev-parse", "HEAD", cwd=self.project).strip())
        # A release whose projections schema differs: every deploy of it builds a read model.
        lock.write_text(pristine)
        projections = self.project / "src" / "helionyx" / "domain" / "projections.py"
        text = projections.read_text()
        projections.write_text(text.replace("SCHEMA_VERSION = 1\n", "SCHEMA_VERSION = 2\n", 1))
        sh("git", "commit", "--quiet", "-am", "bench: projections schema 2", cwd=self.project)
        self.cli("artifact")
        self.schema2 = sh("git", "rev-parse", "HEAD", cwd=self.project).strip()
        for env in ("dev", "staging", "live"):
            fill_settings(
                REPO / f".env.{env}.example",
                self.project / f".env.{env}",
                {"HELIONYX_API_TOKEN": self.token},
            )
            self.cli("setup-host", "--env", env)

    def load(self, port: int) -> Load:
        """Steady load on a port of the node."""
        return Load(
            f"http://{self.env['DEPLOY_HOST']}:{port}", self.token, clients=CLIENTS, max_seconds=900
        )

    def measure(self, name: str, load: Load | None, action: Callable[[], object]) -> None:
        """Time one repetition of `name` (and charge the load it saw to it, under load)."""
        label = f"{name} (under load)" if load else name
        figure = self.figures.setdefault(label, Figure(label))
        if load is None:
            figure.seconds.append(timed(action))
            return
        load.mark(name)
        figure.seconds.append(timed(action))
        figure.add_load(load.mark("between"))

    def beside_steady(self, name: str, load: Load, action: Callable[[], object]) -> None:
        """`measure` under load, after a window of the same load with nothing going on: the
        steady state the hand-over is held to, in the same conditions (log, time into the run,
        whatever else this machine does meanwhile)."""
        self.measure("steady state", load, lambda: time.sleep(STEADY_SECONDS))
        self.measure(name, load, action)

    def helionyx(self) -> None:
        """Floor, deploys, no-op redeploys and rollbacks of Helionyx, under load."""
        store = f"dir:{self.project / 'dist' / 'releases'}"

        def deploy(sha: str) -> None:
            out = self.cli("deploy", "--env", "dev", "--version", sha, "--store", store)
            upload = re.search(r"^  upload +[\d.]+ s  (.*)$", out, re.MULTILINE)
            # The first deploy sends everything the host needs; the next (a new commit, the same
            # lock) only what changed.
            first = "first deploy upload"
            kind = first if first not in self.sizes else "service-only change upload"
            if upload and kind not in self.sizes:
                self.sizes[kind] = upload[1]

        artifact = self.project / "dist" / "releases"
        self.sizes["artifact"] = sh("du", "-sh", "--apparent-size", str(next(artifact.iterdir())))
        self.sizes["artifact"] = self.sizes["artifact"].split()[0]
        deploy(self.builds[0])
        restart_until_ready = (
            "systemctl restart helionyx-dev.service && "
            "for i in $(seq 3000); do curl -sf -o /dev/null http://127.0.0.1:8000/health/ready "
            "&& break; sleep 0.01; done"
        )
        floor = Figure("floor: systemctl restart until ready")
        for _ in range(REPS):
            # Timed on the node itself: no SSH round trip in the floor.
            out = on_node(f"s=$(date +%s.%N); {restart_until_ready}; e=$(date +%s.%N); echo $s $e")
            start, end = (float(v) for v in out.split())
            floor.seconds.append(end - start)
        self.figures["floor"] = floor
        quiet, loaded = self.builds[1 : REPS + 1], self.builds[REPS + 1 :]
        # Timings first on a quiet machine (2 cores: a load generator competes with the build),
        # then the same operations under steady load for failures and worst latency.
        for sha in quiet:
            self.measure("helionyx deploy", None, lambda s=sha: deploy(s))  # type: ignore[misc]
        for _ in range(REPS):
            self.measure("helionyx no-op redeploy", None, lambda: deploy(quiet[-1]))
        for _ in range(REPS):
            self.measure("operator CLI start-up (--help)", None, lambda: self.cli("--help"))
        for _ in range(REPS):
            self.measure("helionyx rollback", None, lambda: self.cli("rollback", "--env", "dev"))
        with self.load(8000) as load:
            for sha in loaded:
                self.beside_steady("helionyx deploy", load, lambda s=sha: deploy(s))  # type: ignore[misc]
            for _ in range(REPS):
                self.beside_steady(
                    "helionyx rollback", load, lambda: self.cli("rollback", "--env", "dev")
                )
        # Last: a new lock each time (every release holds the same dependencies otherwise).
        for sha in self.relocked:
            self.measure("helionyx deploy, new lock", None, lambda s=sha: deploy(s))  # type: ignore[misc]

    def migration(self) -> None:
        """A deploy that builds a new read model from MIGRATION_EVENTS events, under load."""
        store = f"dir:{self.project / 'dist' / 'releases'}"
        python = "/opt/helionyx/dev/current/venv/bin/python"
        script = (
            "from pathlib import Path; from helionyx.domain.store import EventStore; "
            "from helionyx.domain.events import Event, MESSAGE_INGESTED; "
            "s = EventStore(Path('/var/lib/helionyx/dev/events'), fsync=False); s.open(); "
            "[s.append([Event(MESSAGE_INGESTED, {'text': f'bulk {b} {i}', 'source': 'api', "
            f"'chat_id': None}}) for i in range(1000)]) for b in range({MIGRATION_EVENTS // 1000})]"
        )
        self.cli("deploy", "--env", "dev", "--version", self.builds[0], "--store", store)
        on_node(f"cd /tmp && runuser -u helionyx -- {python} -c {shlex.quote(script)}")
        with self.load(8000) as load:
            for _ in range(MIGRATION_REPS):
                self.cli("deploy", "--env", "dev", "--version", self.builds[0], "--store", store)
                on_node("rm -f /var/lib/helionyx/dev/projections/projections.v2.db*")
                outputs: list[str] = []
                migrate = [
                    *("deploy", "--env", "dev", "--version", self.schema2),
                    *("--store", store, "--migrate"),
                ]
                self.measure(
                    "helionyx deploy, read model of 100k events",
                    load,
                    lambda out=outputs, args=migrate: out.append(self.cli(*args)),  # type: ignore[misc]
                )
                self._note_rate(outputs[0])

    def _note_rate(self, output: str) -> None:
        """Events per second of the read-model build, from the deploy's `read model:` line."""
        line = next((li for li in output.splitlines() if "read model: rebuilt" in li), "")
        events = line.split(" from ")[-1].split(" events")[0]
        seconds = line.rsplit(" in ", 1)[-1].removesuffix(" s")
        if events.isdigit() and seconds:
            self.rebuild_rates.append(int(events) / float(seconds))

    def socket_restart(self) -> None:
        """What APPLY=1 costs under load: restarts that move the listening socket (between
        `[::]`, dual-stack, and 0.0.0.0: both reach the node's loopback, where its health gate
        asks, and its address, where the load comes from) beside restarts that keep it."""
        addresses = ["[::]", "0.0.0.0"]
        with self.load(8000) as load:
            for _ in range(REPS):
                self.beside_steady(
                    "restart, socket kept", load, lambda: self.cli("restart", "--env", "dev")
                )
            for _ in range(REPS):
                # The hand-over alone, asked on the host as the agent asks it: what clients pay
                # without the operator's and the agent's own work on these 2 cores.
                self.beside_steady("hand-over alone, on the host", load, hand_over_on_the_node)
            for number in range(REPS):
                moved = {**self.env, "DEPLOY_LISTEN_ADDRESS": addresses[number % 2]}
                self.measure(
                    "restart, socket moved (APPLY=1)",
                    load,
                    lambda e=moved: self.cli("restart", "--env", "dev", "--apply-units", env=e),  # type: ignore[misc]
                )
        if REPS % 2:
            self.cli("restart", "--env", "dev", "--apply-units")  # back on 0.0.0.0

    def status_of_every_env(self) -> None:
        """`make status` without ENV: three envs on the node, read concurrently (staging and
        live are set up with nothing deployed, so it exits 1: timed all the same)."""
        command = [sys.executable, "-m", "release", "--repo", str(self.project), "status"]
        environ = {**os.environ, **self.env}
        for _ in range(REPS):
            self.measure(
                "status of every env (3, concurrently)",
                None,
                lambda: subprocess.run(command, capture_output=True, env=environ, check=False),
            )

    def baseline(self) -> None:
        """The in-place way: one venv per env, pip install --upgrade the new wheel, restart."""
        base = "/opt/helionyx-inplace"
        data = "/var/lib/helionyx-inplace"
        # No start rate limit: the bench upgrades faster than anyone deploys (6 restarts can
        # fall within systemd's default 10 s window of 5 starts).
        unit = f"""[Unit]
Description=Helionyx, deployed in place (benchmark baseline)
StartLimitIntervalSec=0
[Service]
User=helionyx
EnvironmentFile=/etc/helionyx/inplace.env
WorkingDirectory={data}
ExecStart={base}/venv/bin/python -m helionyx serve --env dev
"""
        overrides = (
            f"API_HOST=0.0.0.0\nAPI_PORT={BASELINE_PORT}\nEVENT_STORE_PATH={data}/events\n"
            f"PROJECTIONS_DB_PATH={data}/projections/p.db\n"
        )
        # Its own settings file: in EnvironmentFile= beats Environment=, so override there.
        on_node(
            f"mkdir -p {base} {data} && chown helionyx {data} && python3 -m venv {base}/venv && "
            "grep -vE '^(API_HOST|API_PORT|EVENT_STORE_PATH|PROJECTIONS_DB_PATH)=' "
            "/etc/helionyx/dev.env > /etc/helionyx/inplace.env && "
            f"printf {shlex.quote(overrides)} >> /etc/helionyx/inplace.env && "
            "chmod 600 /etc/helionyx/inplace.env && "
            f"printf %s {shlex.quote(unit)} > /etc/systemd/system/helionyx-inplace.service && "
            "systemctl daemon-reload"
        )
        releases = self.project / "dist" / "releases"
        versions = {
            json.loads((d / "manifest.json").read_text())["commit"]: d for d in releases.iterdir()
        }

        def upgrade(sha: str) -> None:
            artifact = versions[sha]
            with tempfile.TemporaryDirectory() as tmp:
                bundle = Path(tmp) / "a.tar"
                sh("tar", "-cf", str(bundle), "-C", str(artifact), ".")
                target = f"{base}/incoming"
                on_node(f"rm -rf {target} && mkdir -p {target}")
                sh(
                    "scp",
                    "-q",
                    "-i",
                    self.env["DEPLOY_SSH_KEY"],
                    "-o",
                    f"UserKnownHostsFile={self.env['DEPLOY_KNOWN_HOSTS']}",
                    str(bundle),
                    f"root@{self.env['DEPLOY_HOST']}:{target}/a.tar",
                )
            wheel = next(artifact.glob("helionyx-*.whl")).name
            on_node(
                f"cd {target} && tar -xf a.tar && {base}/venv/bin/pip install -q "
                "--no-index --find-links wheelhouse -r requirements.lock && "
                f"{base}/venv/bin/pip install -q --upgrade --no-deps --no-index {wheel} && "
                "systemctl restart helionyx-inplace && "
                f"for i in $(seq 3000); do curl -sf -o /dev/null "
                f"http://127.0.0.1:{BASELINE_PORT}/health/ready && exit 0; sleep 0.01; done; exit 1"
            )

        upgrade(self.builds[0])
        for sha in self.builds[1 : REPS + 1]:
            self.measure("baseline in-place deploy", None, lambda s=sha: upgrade(s))  # type: ignore[misc]
        with self.load(BASELINE_PORT) as load:
            for sha in self.builds[REPS + 1 :]:
                self.measure("baseline in-place deploy", load, lambda s=sha: upgrade(s))  # type: ignore[misc]

    def report(self) -> dict[str, Any]:
        """Print the table and ratios; return them as data."""
        floor = self.figures["floor"].median
        deploy = self.figures["helionyx deploy"].median
        relocked = self.figures["helionyx deploy, new lock"].median
        rows = {name: figure.row() for name, figure in self.figures.items()}
        ratios = {
            "deploy/floor": round(deploy / floor, 2),
            "rollback/floor": round(self.figures["helionyx rollback"].median / floor, 2),
            "baseline/deploy": round(self.figures["baseline in-place deploy"].median / deploy, 2),
            "deploy new lock/floor": round(relocked / floor, 2),
        }
        targets = {
            "deploy <= 4 x floor": round(4 * floor, 2),
            "rollback <= 1.5 x floor + 0.3 s": round(1.5 * floor + 0.3, 2),
            "no-op redeploy <= 0.5 s": 0.5,
        }
        header = ("operation", "median", "min", "max", "requests", "failed", "p99", "worst")
        print("\n{:<36} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8}".format(*header))
        for name, row in rows.items():
            cells = [f"{row[k]:.2f}s" for k in ("median_s", "min_s", "max_s")]
            if "under load" not in name:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [
                    str(row["requests_under_load"]),
                    str(row["failed_requests"]),
                    f"{row['p99_latency_s'] * 1000:.0f}ms",
                    f"{row['worst_latency_s'] * 1000:.0f}ms",
                ]
            print(
                "{:<36} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8}".format(
                    self.figures[name].name, *cells
                )
            )
        for figure in self.figures.values():
            if figure.failures:
                kinds = ", ".join(f"{k}: {v}" for k, v in sorted(figure.failures.items()))
                away = f"; away for up to {figure.longest_outage:.2f} s"
                print(f"  {figure.name} failures: {kinds}{away}")
        handover = self.handover_targets()
        for line in handover["lines"]:
            print(line)
        print()
        for name, value in ratios.items():
            print(f"{name:<22} {value:5.2f}")
        print()
        for name, limit in targets.items():
            print(f"target {name:<32} {limit:5.2f}s")
        for what, weighs in self.sizes.items():
            print(f"{what:<28} {weighs}")
        rate = statistics.median(self.rebuild_rates) if self.rebuild_rates else None
        if rate:
            print(f"\nread model built at {rate:,.0f} events/s ({MIGRATION_EVENTS:,} events)")
        return {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "node": "systemd-nspawn Debian 12 test node on the same machine",
            },
            "reps": REPS,
            "clients": CLIENTS,
            "figures": rows,
            "ratios": ratios,
            "targets_s": targets,
            "read_model_events_per_s": round(rate) if rate else None,
            "sizes": self.sizes,
            "handover": handover["figures"],
        }

    def handover_targets(self) -> dict[str, Any]:
        """Deploy, rollback and restart under load against the steady state of the same run."""
        steady = self.figures["steady state (under load)"]
        limit = steady.p99 + HANDOVER_MARGIN
        lines = [
            f"\nsteady p99 {steady.p99 * 1000:.0f} ms; target worst <= {limit * 1000:.0f} ms "
            f"(the steady state itself, {len(steady.worsts)} windows of {STEADY_SECONDS:.0f} s "
            f"before the operations: worst {steady.worst_latency * 1000:.0f} ms; "
            f"{steady.reps_over(limit)} of the windows and {steady.over(limit)} of "
            f"{steady.requests} requests above)"
        ]
        figures: dict[str, Any] = {
            "steady_p99_s": round(steady.p99, 3),
            "limit_s": round(limit, 3),
            "steady_over_limit": steady.over(limit),
            "steady_windows": len(steady.worsts),
            "steady_windows_over_limit": steady.reps_over(limit),
        }
        for name in (
            "helionyx deploy",
            "helionyx rollback",
            "restart, socket kept",
            "hand-over alone, on the host",
        ):
            figure = self.figures[f"{name} (under load)"]
            met = figure.worst_latency <= limit and figure.failed == 0 and figure.resets == 0
            lines.append(
                f"  {name:<22} worst {figure.worst_latency * 1000:4.0f} ms, p99 "
                f"{figure.p99 * 1000:4.0f} ms, failed {figure.failed}, resets {figure.resets}, "
                f"{figure.reps_over(limit)} of {len(figure.worsts)} times and "
                f"{figure.over(limit)} of {figure.requests} requests above: "
                + ("met" if met else "MISSED")
            )
            figures[name] = {
                "met": met,
                "over_limit": figure.over(limit),
                "reps_over_limit": figure.reps_over(limit),
                **figure.row(),
            }
        return {"lines": lines, "figures": figures}


def run(workdir: Path) -> dict[str, Any]:
    """Every measurement, on nodes it boots; the figures."""
    bench = Bench(workdir)
    bench.prepare()
    bench.helionyx()
    three = ThreeHosts(
        cli=bench.cli,
        env=bench.env,
        builds=bench.builds,
        fresh=bench.fresh,
        store=f"dir:{bench.project / 'dist' / 'releases'}",
        token=bench.token,
        clients=CLIENTS,
        reps=REPS,
        testnode=TESTNODE,
        run=sh,
    )
    try:
        three.measure(workdir)
    finally:
        three.down()
    bench.migration()
    bench.status_of_every_env()
    bench.socket_restart()
    bench.baseline()
    data = bench.report()
    one_node = {
        "deploy": bench.figures["helionyx deploy"].median,
        "rollback": bench.figures["helionyx rollback"].median,
    }
    data["three_nodes"] = three.report(one_node)
    return data


def main() -> int:
    """Run everything, print, write the JSON."""
    if os.geteuid() != 0:
        print("make bench boots the test node and needs root", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="helionyx-bench-"))
    try:
        with ports_reused():
            data = run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run([sys.executable, str(TESTNODE), "down"], capture_output=True, check=False)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

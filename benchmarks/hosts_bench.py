"""The `make bench` rows of an env of three nodes (issue 23), beside the one-node rows.

Boots two more test nodes beside node1 and sets dev up on the three as one env (DEPLOY_HOSTS).
Measures, as `deploy_bench` does: the wall time of a deploy and of a rollback to all three
(target: <= 1.3 x one node's), the largest gap between the first and the last host switching
as a client probing each host's /health sees it (target: <= 100 ms), and failed requests under
load on every host (target: 0). The same wall times for two of the nodes: on this machine's 2
cores, three nodes' CPU-bound steps (the build, the new release's boot) wait for each other,
two nodes' less so, which tells the cost of the cores apart from the cost of coordinating.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import Load

#: The two nodes beside node1: name and subnet index.
OTHERS = (("node2", 2), ("node3", 3))
#: How often the switch probe asks each host which release answers.
PROBE_EVERY = 0.002


@dataclass
class Switches:
    """When each host first answered with a new commit, as a client asking all of them sees it."""

    urls: list[str]
    sha: str
    first: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Switches:
        for url in self.urls:
            thread = threading.Thread(target=self._probe, args=(url,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _probe(self, url: str) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set() and url not in self.first:
                try:
                    body = client.get(f"{url}/health").json()
                except (httpx.HTTPError, ValueError):
                    continue
                if body.get("commit") == self.sha:
                    self.first[url] = time.monotonic()
                time.sleep(PROBE_EVERY)

    @property
    def gap(self) -> float | None:
        """Seconds between the first and the last host switching (None: not all did)."""
        if len(self.first) < len(self.urls):
            return None
        return max(self.first.values()) - min(self.first.values())


@dataclass
class ThreeHosts:
    """What the rows need from the main bench: its CLI, settings, builds and figures."""

    cli: Callable[..., str]
    env: dict[str, str]
    builds: list[str]
    #: Builds no node has had: the two-node deploys, each a new release everywhere.
    fresh: list[str]
    store: str
    token: str
    clients: int
    reps: int
    testnode: Path
    run: Callable[..., str]
    gaps: list[float] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def boot(self, workdir: Path) -> dict[str, str]:
        """node2 and node3 up beside node1; the operator's environment for the three."""
        ips, known = [self.env["DEPLOY_HOST"]], [Path(self.env["DEPLOY_KNOWN_HOSTS"]).read_text()]
        for name, index in OTHERS:
            which = ("--name", name, "--index", str(index))
            self.run(sys.executable, str(self.testnode), *which, "down")
            self.run(sys.executable, str(self.testnode), *which, "up")
            lines = self.run(sys.executable, str(self.testnode), *which, "env").splitlines()
            found = dict(line.removeprefix("export ").split("=", 1) for line in lines)
            ips.append(found["DEPLOY_HOST"])
            known.append(Path(found["DEPLOY_KNOWN_HOSTS"]).read_text())
        (workdir / "known_hosts").write_text("".join(known))
        return {
            **self.env,
            "DEPLOY_HOSTS": ",".join(ips),
            "DEPLOY_KNOWN_HOSTS": str(workdir / "known_hosts"),
        }

    def down(self) -> None:
        for name, index in OTHERS:
            which = ("--name", name, "--index", str(index))
            self.run(sys.executable, str(self.testnode), *which, "down")

    def measure(self, workdir: Path) -> None:
        """Deploys and rollbacks to three hosts, quiet; then deploys under load on each host."""
        three = self.boot(workdir)
        ips = three["DEPLOY_HOSTS"].split(",")
        self.cli("setup-host", "--env", "dev", env=three)

        def deploy(sha: str) -> None:
            self.cli("deploy", "--env", "dev", "--version", sha, "--store", self.store, env=three)

        deploy(self.builds[0])
        quiet, loaded = self.builds[1 : self.reps + 1], self.builds[self.reps + 1 :]
        for sha in quiet:
            self._timed("3 hosts: deploy", lambda s=sha: deploy(s))  # type: ignore[misc]
        for _ in range(self.reps):
            self._timed(
                "3 hosts: rollback", lambda: self.cli("rollback", "--env", "dev", env=three)
            )
        self._two_nodes({**three, "DEPLOY_HOSTS": ",".join(ips[:2])})
        urls = [f"http://{ip}:8000" for ip in ips]
        loads = [
            Load(url, self.token, clients=max(1, self.clients // 3), max_seconds=600)
            for url in urls
        ]
        for load in loads:
            load.__enter__()
        try:
            for sha in loaded:
                for load in loads:
                    load.mark("between")
                with Switches(urls, sha) as switches:
                    self._timed("3 hosts: deploy (under load)", lambda s=sha: deploy(s))  # type: ignore[misc]
                    deadline = time.monotonic() + 10
                    while switches.gap is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                if switches.gap is not None:
                    self.gaps.append(switches.gap)
                for url, load in zip(urls, loads, strict=True):
                    phase = load.mark("between")
                    self.failed[url] = self.failed.get(url, 0) + phase.failed
                    self.requests[url] = self.requests.get(url, 0) + phase.requests
        finally:
            for load in loads:
                load.__exit__(None, None, None)

    def _two_nodes(self, two: dict[str, str]) -> None:
        """Deploys of new releases and rollbacks to node1 and node2 only (node3 stays behind:
        the next deploy to the three brings it along)."""
        for sha in self.fresh:
            self._timed(
                "2 hosts: deploy",
                lambda s=sha: self.cli(  # type: ignore[misc]
                    "deploy", "--env", "dev", "--version", s, "--store", self.store, env=two
                ),
            )
        for _ in range(self.reps):
            self._timed("2 hosts: rollback", lambda: self.cli("rollback", "--env", "dev", env=two))

    def _timed(self, name: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.seconds.setdefault(name, []).append(time.monotonic() - started)

    def report(self, one_node: dict[str, float]) -> dict[str, Any]:
        """Print the rows beside one node's medians; return them as data."""
        medians = {name: statistics.median(values) for name, values in self.seconds.items()}
        print("\nan env of 3 nodes")
        rows: dict[str, Any] = {}
        for what in ("deploy", "rollback"):
            three, two = medians[f"3 hosts: {what}"], medians[f"2 hosts: {what}"]
            one = one_node[what]
            ratio = three / one
            met = "met" if ratio <= 1.3 else "MISSED"
            print(
                f"  {what:<9} {three:5.2f} s on 3 nodes, {one:5.2f} s on one: "
                f"{ratio:.2f} x (target <= 1.3 x): {met}; on 2 nodes {two:5.2f} s: "
                f"{two / one:.2f} x"
            )
            rows[what] = {
                "three_s": round(three, 3),
                "two_s": round(two, 3),
                "one_s": round(one, 3),
                "ratio": round(ratio, 2),
                "ratio_two": round(two / one, 2),
            }
        worst_gap = max(self.gaps, default=float("nan"))
        print(
            f"  switch gap (first to last host, as a client sees it): worst "
            f"{worst_gap * 1000:.0f} ms over {len(self.gaps)} deploys (target <= 100 ms): "
            + ("met" if worst_gap <= 0.1 else "MISSED")
        )
        failed = sum(self.failed.values())
        print(
            f"  under load on every host: {sum(self.requests.values())} requests, "
            f"{failed} failed (target 0): " + ("met" if failed == 0 else "MISSED")
        )
        rows["switch_gap_s"] = [round(g, 4) for g in self.gaps]
        rows["failed_requests"] = self.failed
        rows["requests"] = self.requests
        rows["deploy_under_load_median_s"] = round(medians["3 hosts: deploy (under load)"], 3)
        return rows

"""How the CLI shows results: step lines, the plan, status screens and release lists."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict

from release.agent.protocol import Progress
from release.artifacts.store import ReleaseInfo
from release.hosts import status
from release.hosts.plan import Plan

#: Several hosts report at once (one thread each): a line is written whole, under this lock.
_LINES = threading.Lock()


def _say(line: str) -> None:
    with _LINES:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class PrintReporter:
    """Steps with their durations, on stdout; a long step's countdown on stderr."""

    #: Seconds between countdown lines when stderr is not a terminal (a log, CI).
    LOG_EVERY = 10.0

    def __init__(self) -> None:
        self._counting = False
        self._logged: float | None = None

    def headline(self, message: str) -> None:
        """The operation's first line."""
        self._end_countdown()
        _say(message)

    def step(self, name: str, seconds: float, detail: str = "") -> None:
        """One finished step."""
        self._end_countdown()
        _say(f"  {name:<18} {seconds:6.2f} s  {detail}".rstrip())

    def note(self, message: str) -> None:
        """A remark."""
        self._end_countdown()
        _say(f"  · {message}")

    def progress(self, progress: Progress) -> None:
        """`watch: 27 s left of 30 s`, redrawn in place on a terminal, every 10 s in a log
        (`read model: 42 s, about 30 s expected` once a step outlasts its estimate)."""
        step, done, total = progress["step"], progress["done"], progress["total"]
        left = total - done
        if left >= 0:
            line = f"  {step}: {left:.0f} s left of {total:g} s"
        else:
            line = f"  {step}: {done:.0f} s" + (f", about {total:g} s expected" if total else "")
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
            self._counting = True
        elif self._logged is None or done - self._logged >= self.LOG_EVERY:
            self._logged = done
            print(line, file=sys.stderr, flush=True)

    def _end_countdown(self) -> None:
        if self._counting:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        self._counting, self._logged = False, None


def plan(ahead: Plan) -> None:
    first, *rest = ahead.header()
    print(first)
    for line in rest:
        print(f"  {line}")
    if ahead.deployed_by:
        print(f"  running since {ahead.deployed_at}, deployed by {ahead.deployed_by}")
    for commit in ahead.commits:
        print(f"  commit {commit}")
    for version, notes in ahead.changelog.items():
        print(f"  ## {version}")
        for line in notes.splitlines():
            print(f"    {line}")


def env_status(current: status.Status, *, releases_only: bool) -> None:
    if not releases_only:
        service_state = current.service
        uptime = service_state.get("uptime_seconds")
        print(f"env        {current.env} ({current.unit} on {current.host})")
        if current.interpreter:
            print(f"host       {current.interpreter}")
        print(f"current    {current.version or '-'} ({current.sha or 'none'})")
        if current.deployed_at:
            who = f"by {current.deployed_by} from {current.deployed_from}"
            print(f"deployed   {current.deployed_at} {who}")
        print(
            f"service    {service_state.get('state')} ({service_state.get('sub_state')})"
            + (f", up {uptime:.0f} s, pid {service_state.get('pid')}" if uptime is not None else "")
        )
        if service_state.get("handing_over"):
            print(f"hand-over  {service_state['handing_over']}")
        body = current.health.get("body")
        answer = json.dumps(body) if body else f"no answer ({current.health.get('status')})"
        print(f"health     {answer}")
        print(
            f"verdict    {'healthy' if current.healthy else 'NOT HEALTHY: ' + str(current.problem)}"
        )
        skipped = body.get("unreadable_events") if isinstance(body, dict) else None
        if skipped:
            # Rolled back by force onto a log it cannot wholly read (docs/DEPLOYMENT.md).
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
            print(f"skipping   {kinds} event(s) it cannot read; roll forward to serve them")
        print(f"lock       {current.lock or 'free'}")
        if current.leftovers:
            print(
                f"leftovers  {', '.join(current.leftovers)} "
                "(an interrupted deploy; the next deploy removes them)"
            )
        for change in current.drift:
            print(f"set-up     differs from this checkout's: {change} (APPLY=1 on the next deploy)")
        print("releases")
    if not current.releases:
        print("  (none)")
    for row in current.releases:
        marker = "*" if row["state"] == "current" else " "
        print(f"  {marker} {row['sha'][:12]}  {row['version']!s:<36} {row['state']}")


def hosts_status(whole: status.EnvStatus, *, releases_only: bool) -> None:
    """An env of several hosts: a line per host (its release, state and problem), the verdict;
    with `releases_only`, each host's releases."""
    if releases_only:
        for row in whole.hosts:
            print(f"{row.host}")
            if row.value is None:
                print(f"  could not be read: {row.error}")
            else:
                env_status(row.value, releases_only=True)
        return
    print(f"env        {whole.env} on {len(whole.hosts)} hosts")
    width = max(len(row.host) for row in whole.hosts)
    for row in whole.hosts:
        now = row.value
        if now is None:
            print(f"  {row.host:<{width}}  unreachable  {row.error}")
            continue
        health = "healthy" if now.healthy else "UNHEALTHY"
        pid = now.service.get("pid")
        line = (
            f"  {row.host:<{width}}  {health:<9}  {now.version or '-'} ({(now.sha or 'none')[:12]})"
        )
        line += f"  {now.service.get('state')}, pid {pid}" + (
            f", locked by {now.lock}" if now.lock else ""
        )
        print(line)
        if now.service.get("handing_over"):
            print(f"  {'':<{width}}  hand-over {now.service['handing_over']}")
    verdict = f"healthy, {whole.version} ({str(whole.sha)[:12]}) on every host"
    print(f"verdict    {verdict if whole.healthy else 'NOT HEALTHY: ' + str(whole.problem)}")


def releases(infos: list[ReleaseInfo], fmt: str) -> int:
    if fmt == "json":
        # A release made outside this tool has no known commit: null, never a branch name.
        rows = [{**asdict(info), "sha": info.sha or None} for info in infos]
        print(json.dumps(rows, indent=2))
        return 0
    if not infos:
        print("no releases")
        return 0
    print(f"{'VERSION':<36} {'SHA':<12} {'BUILT':<21} {'SIZE':>10}  HOSTS")
    for info in infos:
        sha = info.sha[:12] or "-"
        hosts = info.targets or "-"
        print(f"{info.version:<36} {sha:<12} {info.built_at:<21} {size(info.size):>10}  {hosts}")
    return 0


def size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"


def overview(rows: list[status.Overview]) -> None:
    """`make status` without ENV: one line per env."""
    print(f"{'env':<9}{'version':<12}{'sha':<14}{'since':<26}{'by':<18}{'health':<10}behind")
    for row in rows:
        now = row.status
        if now is None:
            print(f"{row.env:<9}{'?':<12}{'-':<14}{'-':<26}{'-':<18}{'unknown':<10}{row.error}")
            continue
        health = "healthy" if now.healthy else "UNHEALTHY"
        print(
            f"{row.env:<9}{now.version or '-':<12}{(now.sha or '-')[:12]:<14}"
            f"{now.deployed_at or '-':<26}{now.deployed_by or '-':<18}{health:<10}"
            f"{row.behind or '-'}"
        )
        if now.problem:
            print(f"{'':<9}{now.problem}")
        if now.lock:
            print(f"{'':<9}locked by {now.lock}")


def note(message: str) -> None:
    """What a store tells the operator while it works (waits, a moved repository): stderr."""
    print(message, file=sys.stderr, flush=True)

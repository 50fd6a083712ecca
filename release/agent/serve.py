"""The agent's loop: a hello, then one JSON answer line per request line, until stdin closes.

One agent process serves a whole operation, so each step costs a line each way instead of a
new SSH channel and interpreter. Commands that change the host record their outcome in the
deploy log themselves, so the record survives an operator killed mid-way; `go_live` also
writes the operation's finish record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import (
    activate,
    backup,
    deploylog,
    install,
    lock,
    phased,
    priority,
    prune,
    readmodels,
    setup,
    state,
    watch,
)
from .errors import AgentError
from .layout import Context, Layout
from .protocol import (
    ACTIVATE,
    BACKUP,
    BACKUPS,
    CUT_WATCH,
    FAILED,
    GO_LIVE,
    GO_READY,
    GO_SETTLE,
    GO_SWITCH,
    INSTALL,
    JOURNAL,
    LOCK,
    MIGRATE,
    PREPARE,
    PRUNE,
    RESTART,
    RESTORE,
    SETUP,
    STATE,
    STEP_OK,
    STOP,
    UNLOCK,
    Answer,
    Command,
    Hello,
    LogRecord,
    Message,
    Progress,
)
from .system import HostSystem, System
from .timestamps import utc_timestamp

R = TypeVar("R")
A = TypeVar("A")
Handler = Callable[[Context, Any], Any]


def _serves(command: Command[R, A], handler: Callable[[Context, R], A]) -> tuple[str, Handler]:
    """A table entry whose handler mypy checks against the command's request and answer."""
    return command.name, handler


HANDLERS: dict[str, Handler] = dict(
    [
        _serves(STATE, state.state),
        _serves(LOCK, lock.lock),
        _serves(UNLOCK, lock.unlock),
        _serves(PREPARE, install.prepare),
        _serves(INSTALL, install.install),
        _serves(RESTART, activate.restart),
        _serves(ACTIVATE, activate.activate),
        _serves(GO_LIVE, activate.go_live),
        _serves(GO_READY, phased.go_ready),
        _serves(GO_SWITCH, phased.go_switch),
        _serves(GO_SETTLE, phased.go_settle),
        _serves(STOP, activate.stop),
        _serves(JOURNAL, activate.journal),
        _serves(PRUNE, prune.prune),
        _serves(MIGRATE, readmodels.migrate),
        _serves(CUT_WATCH, watch.cut_watch),
        _serves(SETUP, setup.setup),
        _serves(BACKUP, backup.backup),
        _serves(BACKUPS, backup.backups),
        _serves(RESTORE, backup.restore),
    ]
)


def _handler(name: str) -> Handler:
    handler = HANDLERS.get(name)
    if handler is None:
        raise AgentError(f"unknown command {name!r}")
    return handler


def handle(
    message: Message, system: System, report: Callable[[Progress], None] | None = None
) -> Answer:
    """Run one request; return its answer, recording its outcome in the deploy log if asked.
    `report` carries the step's progress to the operator before the answer."""
    layout = Layout.of(message["target"])
    ctx = Context(layout, system, report) if report else Context(layout, system)
    started = utc_timestamp()
    answer: Answer
    try:
        deploylog.append(layout.log, message.get("log_before", []))
        answer = {"ok": True, "result": _handler(message["command"])(ctx, message["request"])}
    except (AgentError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        answer = {"ok": False, "error": str(exc) or type(exc).__name__}
    record = message.get("record")
    if record:
        result = answer.get("result")
        unhealthy = isinstance(result, dict) and result.get("healthy") is False
        event: LogRecord = {**record, "started_at": started, "ended_at": utc_timestamp()}
        event["outcome"] = STEP_OK if answer["ok"] and not unhealthy else FAILED
        reason = answer.get("error") or (result.get("reason") if isinstance(result, dict) else None)
        if reason:
            event["reason"] = str(reason)
        deploylog.append(layout.log, [event])
    return answer


def _report(progress: Progress) -> None:
    """A progress line; an operator who has gone away must not stop the step (a watch)."""
    try:
        sys.stdout.write(json.dumps({"progress": progress}) + "\n")
        sys.stdout.flush()
    except OSError:
        pass


def serve(system: System | None = None) -> int:
    """Answer request lines from stdin until it closes."""
    system = system or HostSystem()
    # The operator's end going away (a kill, a cut link) must not stop a step half-way.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The host's services come first: an upload's unpacking and checksums, a venv build, a
    # read-model rebuild (and every program they start) take what CPU the env leaves.
    priority.calm()
    hello: Hello = {"agent": os.getpid(), "platform": system.platform()}
    sys.stdout.write(json.dumps({"ok": True, "result": hello}) + "\n")
    sys.stdout.flush()
    pending = phased.Pending()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            message = json.loads(line)
            answer = handle(message, system, _report)
            pending.saw(message, answer)
            try:
                sys.stdout.write(json.dumps(answer) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                return 0
    finally:
        # The operator went away mid-way through going live on several hosts: undo it here.
        pending.abandon(system)
    return 0

"""Activations a host reboot cut short: recorded before the switch, undone at the next boot.

`activate.go_live` finishes on the host even when the operator is gone, but not when the host
goes down. So before it flips `current` it records its intent durably (`begin`: what was live
before, the finish record it would write), and removes it once the outcome is recorded
(`end`). At boot, before the env's service starts and takes the connections queued on its
socket, the unit's `ExecStartPre=` runs this module from the copy `install` keeps in the base
dir: an intent left by an earlier boot means the activation never finished, so `current` goes
back to the release that was live before it and the operation's finish record says why.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import cast

from . import deploylog
from .files import flip, fsync_dir, replace_whole
from .layout import Layout
from .protocol import (
    ACTIVATION,
    AGENT_DIR,
    FAILED,
    FINISH,
    ROLLED_BACK,
    ActivationIntent,
    LogRecord,
    Target,
)
from .system import HostSystem
from .timestamps import utc_timestamp

#: The agent modules the boot-time copy needs (this one and what it imports).
MODULES = (
    "__init__",
    "recovery",
    "deploylog",
    "errors",
    "files",
    "interpreter",
    "layout",
    "protocol",
    "system",
    "timestamps",
)
#: The package name of the installed copy (its modules import each other relatively).
PACKAGE = "helionyx_agent"
ENTRY = "recover.py"
_ENTRY_SOURCE = (
    "# Installed by the Helionyx agent; run by the env's unit at start (ExecStartPre).\n"
    "import sys\n\n"
    f"from {PACKAGE}.recovery import main\n\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def begin(layout: Layout, boot_id: str, sha: str, finish: LogRecord) -> None:
    """Record, durably and before the switch, the activation of `sha` about to start."""
    intent: ActivationIntent = {
        "boot_id": boot_id,
        "sha": sha,
        "before": layout.link_target(layout.current),
        "before_previous": layout.link_target(layout.previous),
        "finish": finish,
    }
    record(layout, intent)


def record(layout: Layout, intent: ActivationIntent) -> None:
    """Write the activation's intent durably (replaced whole: never half-written)."""
    replace_whole(layout.base / ACTIVATION, json.dumps(intent, sort_keys=True) + "\n", 0o600)


def end(layout: Layout) -> None:
    """The activation's outcome is recorded: nothing is left to undo."""
    path = layout.base / ACTIVATION
    if path.exists():
        path.unlink()
        fsync_dir(layout.base)


def pending(layout: Layout) -> ActivationIntent | None:
    """The intent of an activation that has not ended (None if none, or unreadable)."""
    try:
        data = json.loads((layout.base / ACTIVATION).read_text())
    except (OSError, ValueError):
        return None
    return cast(ActivationIntent, data) if isinstance(data, dict) and "sha" in data else None


def recover(layout: Layout, boot_id: str) -> str | None:
    """Undo an activation an earlier boot left unfinished; what was done, or None."""
    intent = pending(layout)
    if intent is None or intent.get("boot_id") == boot_id:
        return None  # nothing left, or an activation of this boot: its agent is on it
    finish = intent["finish"]
    if _recorded(layout, finish):
        end(layout)  # it ended, only the removal of its intent was cut off
        return None
    sha, before = intent["sha"], intent["before"]
    cut = f"the host restarted before the activation of {sha[:12]} finished"
    if before and before != sha and layout.is_complete(before):
        previous = intent["before_previous"]
        if previous and layout.is_complete(previous):
            flip(layout.previous, f"{layout.releases.name}/{previous}")
        flip(layout.current, f"{layout.releases.name}/{before}")
        outcome, reason = ROLLED_BACK, f"{cut}; back on {before[:12]} at boot"
    else:
        outcome, reason = FAILED, f"{cut}; no previous release to go back to"
    record: LogRecord = {**finish, "outcome": outcome, "reason": reason}
    record["ended_at"] = utc_timestamp()
    deploylog.append(layout.log, [record])
    end(layout)
    return reason


def _recorded(layout: Layout, finish: LogRecord) -> bool:
    """Whether the operation of `finish` already has its closing record in the log."""
    wanted = finish.get("deploy_id")
    return any(
        r.get("deploy_id") == wanted and r.get("step") == FINISH
        for r in deploylog.read_decisive(layout.log)
    )


def install(layout: Layout) -> list[str]:
    """Keep the boot-time copy of this module (and what it needs) in the base dir current."""
    wanted = {f"{PACKAGE}/{name}.py": _source(name) for name in MODULES}
    wanted[ENTRY] = _ENTRY_SOURCE
    target = layout.base / AGENT_DIR
    if all(_holds(target / name, text) for name, text in wanted.items()):
        return []
    staged = layout.base / f".{AGENT_DIR}.tmp"
    shutil.rmtree(staged, ignore_errors=True)
    (staged / PACKAGE).mkdir(parents=True)
    for name, text in wanted.items():
        (staged / name).write_text(text)
    old = layout.base / f".{AGENT_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    fsync_dir(layout.base)
    shutil.rmtree(old, ignore_errors=True)
    return [f"installed the boot-time recovery in {target}"]


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def _source(name: str) -> str:
    """A module's source, whether the agent runs from files or from the bundle's loader."""
    package = __package__ or PACKAGE
    module = importlib.import_module(package if name == "__init__" else f"{package}.{name}")
    loader = module.__spec__.loader if module.__spec__ else None
    source = loader.get_source(module.__name__) if loader else None  # type: ignore[attr-defined]
    if not isinstance(source, str):
        raise RuntimeError(f"no source for the agent module {name}")
    return source


def main(argv: list[str]) -> int:
    """`recover.py ENV BASE_DIR DATA_DIR CONFIG_FILE UNIT PORT`, run by the unit at start."""
    names = ("env", "base_dir", "data_dir", "config_file", "unit", "port")
    if len(argv) != len(names):
        print(f"usage: recover.py {' '.join(n.upper() for n in names)}", file=sys.stderr)
        return 2
    layout = Layout.of(cast(Target, dict(zip(names, argv, strict=True))))
    done = recover(layout, HostSystem().boot_id())
    if done:
        print(f"helionyx {layout.env}: {done}", file=sys.stderr)
    return 0

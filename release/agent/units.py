"""The env's systemd units on the host: installed from what the operator rendered, the
listening socket moved to systemd, and the record of the settings the env is set up with."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import AgentError
from .files import replace_whole
from .layout import Context, Layout
from .protocol import HOST_SETTINGS
from .system import System


def install_units(system: System, units: dict[str, str]) -> list[str]:
    """Write unit files that differ from `units` and reload systemd if any did."""
    changed = []
    for name, text in sorted(units.items()):
        path = system.units_dir / name
        if not path.exists() or path.read_text() != text:
            temporary = path.with_name(f".{name}.tmp")
            temporary.write_text(text)
            temporary.chmod(0o644)
            os.replace(temporary, path)
            changed.append(f"installed {path}")
    if changed:
        systemctl_checked(system, "daemon-reload")
    return changed


def systemctl_checked(system: System, *args: str, timeout: float = 120) -> None:
    code, error = system.systemctl(*args, timeout=timeout)
    if code != 0:
        raise AgentError(f"systemctl {' '.join(args[:2])} failed: {error or code}")


def ensure_socket(ctx: Context) -> list[str]:
    """Have systemd listen on the env's port; migrates a service that still binds it itself."""
    layout, system = ctx.layout, ctx.system
    socket_unit = f"{layout.unit}.socket"
    if not (system.units_dir / socket_unit).exists():
        return []
    if system.systemctl("is-active", "--quiet", socket_unit)[0] == 0:
        return []
    done = []
    if system.systemctl("is-active", "--quiet", f"{layout.unit}.service")[0] == 0:
        # Set up before socket activation: the running process owns the port. Stop it so the
        # socket can bind; the restart that follows starts the service on the socket.
        systemctl_checked(system, "stop", f"{layout.unit}.service", timeout=60)
        done.append(f"moved the listening socket of {layout.unit} to systemd")
    system.systemctl("reset-failed", socket_unit)
    systemctl_checked(system, "enable", "--quiet", socket_unit)
    systemctl_checked(system, "start", socket_unit)
    return done


def listen_line(path: Path) -> str | None:
    """The socket unit's ListenStream= line (None when there is no unit yet)."""
    if not path.is_file():
        return None
    return next((li for li in path.read_text().splitlines() if li.startswith("Listen")), "")


def record_settings(layout: Layout, settings: dict[str, str]) -> None:
    """Write the settings the env is now set up with (renamed into place whole)."""
    replace_whole(
        layout.base / HOST_SETTINGS, json.dumps(settings, indent=2, sort_keys=True) + "\n"
    )


def refresh(ctx: Context, units: dict[str, str], settings: dict[str, str] | None) -> list[str]:
    """Install `units`, record `settings`, and restart the listening socket when its address
    changed (it keeps the old one until restarted, and can only restart with its service
    stopped: connections waiting in its backlog are dropped)."""
    layout, system = ctx.layout, ctx.system
    socket = f"{layout.unit}.socket"
    listening = listen_line(system.units_dir / socket)
    changes = install_units(system, units)
    if settings:
        record_settings(layout, settings)
    moved = listening is not None and listening != listen_line(system.units_dir / socket)
    if moved and system.systemctl("is-active", "--quiet", socket)[0] == 0:
        systemctl_checked(system, "stop", f"{layout.unit}.service", timeout=60)
        systemctl_checked(system, "restart", socket)
        changes.append(f"restarted {socket} on its new settings")
    return changes

"""The systemd units of an environment, rendered from deployment/systemd/*.in."""

from __future__ import annotations

from pathlib import Path

from release.errors import UsageError
from release.hosts.environments import Environment

SYSTEMD_DIR = Path("deployment") / "systemd"
TEMPLATES = {"service": "helionyx.service.in", "socket": "helionyx.socket.in"}


def render_units(root: Path, env: Environment) -> dict[str, str]:
    """`{file name: text}` for the env's .service and .socket units."""
    values = {
        "env": env.name,
        "unit": env.unit,
        "base_dir": env.base_dir,
        "data_dir": env.data_dir,
        "config_file": env.config_file,
        "port": env.port,
        "listen_address": env.listen_address,
    }
    return {
        f"{env.unit}.{kind}": (root / SYSTEMD_DIR / template).read_text("utf-8").format(**values)
        for kind, template in TEMPLATES.items()
    }


def drift(rendered: dict[str, str], on_host: dict[str, str]) -> list[str]:
    """One line per unit the host has with other text than `rendered` (its first changed line;
    a unit the host lacks is no drift: installing it changes no setting)."""
    lines = []
    for name, text in sorted(rendered.items()):
        there = on_host.get(name)
        if there is None or there == text:
            continue
        old = [line for line in there.splitlines() if line not in text.splitlines()]
        new = [line for line in text.splitlines() if line not in there.splitlines()]
        change = f"{old[0] if old else '…'} -> {new[0] if new else '…'}"
        lines.append(f"{name}: {change}")
    return lines


def require_no_drift(
    env: Environment, rendered: dict[str, str], on_host: dict[str, str], *, apply: bool
) -> None:
    """Refuse an operation that would change how the host is set up, unless asked to."""
    changes = drift(rendered, on_host)
    if changes and not apply:
        raise UsageError(
            f"{env.name} on {env.host} is set up differently from what this would install: "
            + "; ".join(changes),
            hint="APPLY=1 applies it (the socket restarts: connections waiting in its backlog "
            "are dropped); or check DEPLOY_LISTEN_ADDRESS and the TOML, or run make setup-host",
            env=env.name,
        )

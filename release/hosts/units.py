"""The systemd units of an environment, rendered from deployment/systemd/*.in."""

from __future__ import annotations

from pathlib import Path

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

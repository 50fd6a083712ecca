"""The systemd units of an environment, rendered from deployment/systemd/*.in."""

from __future__ import annotations

from pathlib import Path

from release.errors import UsageError
from release.hosts.environments import Environment
from release.hosts.host import HostState

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
        "python": env.python,
    }
    return {
        f"{env.unit}.{kind}": (root / SYSTEMD_DIR / template).read_text("utf-8").format(**values)
        for kind, template in TEMPLATES.items()
    }


def host_settings(env: Environment) -> dict[str, str]:
    """The settings that shape the env on its host, as a deploy from here would set them."""
    return {
        "listen": f"{env.listen_address}:{env.port}",
        "unit": env.unit,
        "base_dir": env.base_dir,
        "data_dir": env.data_dir,
        "config_file": env.config_file,
    }


def drift(wanted: dict[str, str], state: HostState) -> list[str]:
    """`<setting>: <on the host> -> <wanted>` for each setting the host was set up with
    otherwise. A host set up before settings were recorded is judged by its socket's address
    (a host without a socket unit has nothing to differ: installing one changes no setting)."""
    recorded = state.host_settings
    if recorded is None:
        socket = state.unit_files.get(f"{wanted['unit']}.socket", "")
        listen = next((li for li in socket.splitlines() if li.startswith("ListenStream=")), "")
        recorded = {"listen": listen.removeprefix("ListenStream=")} if listen else {}
    return [
        f"{key}: {recorded[key]} -> {value}"
        for key, value in wanted.items()
        if key in recorded and recorded[key] != value
    ]


def require_no_drift(env: Environment, state: HostState, *, apply: bool) -> dict[str, str]:
    """The env's settings, refused when the host was set up with others unless `apply`."""
    wanted = host_settings(env)
    changes = drift(wanted, state)
    if changes and not apply:
        raise UsageError(
            f"{env.name} on {env.host} is set up with other settings: " + "; ".join(changes),
            hint="APPLY=1 applies them (the socket restarts: connections waiting in its backlog "
            "are dropped); or check DEPLOY_LISTEN_ADDRESS and the TOML",
            env=env.name,
        )
    return wanted

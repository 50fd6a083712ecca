"""`make setup-host`: first-time, idempotent preparation of one environment on the host."""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

from helionyx.config import ConfigError, load_settings
from release.agent.protocol import SETUP, HostPlatform, SetupRequest
from release.agent.settings import parse_env
from release.artifacts.targets import LEGACY, read_targets
from release.errors import UnsupportedHost, UsageError
from release.hosts.context import Context
from release.hosts.environments import Environment
from release.hosts.fleet import each, values
from release.hosts.operation import reading
from release.hosts.units import host_settings, render_units

_PLACEHOLDER = re.compile(r"<[^<>\n]*>")


def fill_settings(example: Path, target: Path, values: dict[str, str]) -> Path:
    """Write `target` (0600) from an example settings file with `values` set."""
    lines = [
        f"{line.split('=', 1)[0]}={values[line.split('=', 1)[0]]}"
        if "=" in line and line.split("=", 1)[0] in values
        else line
        for line in example.read_text(encoding="utf-8").splitlines()
    ]
    target.touch(mode=0o600)
    target.chmod(0o600)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def render_config(env: Environment, text: str, source: Path) -> str:
    """The host's env file: the operator's settings with the host layout forced from the TOML."""
    settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    keys = sorted({line.split("=", 1)[0] for line in settings if _PLACEHOLDER.search(line)})
    if keys:
        raise UsageError(
            f"{source} still holds template placeholders ({', '.join(keys)})",
            hint="replace every <…> with a real value",
            env=env.name,
        )
    layout = {
        "API_HOST": "127.0.0.1",
        "API_PORT": str(env.port),
        "EVENT_STORE_PATH": f"{env.data_dir}/events",
        "PROJECTIONS_DB_PATH": f"{env.data_dir}/projections/projections.db",
    }
    kept = [
        line
        for line in text.splitlines()
        if line.split("=", 1)[0].strip() not in layout or line.lstrip().startswith("#")
    ]
    rendered = "\n".join(
        [
            f"# Managed by make setup-host ENV={env.name} from {source.name}; host layout keys "
            "come from deployment/environments.",
            *kept,
            *(f"{key}={value}" for key, value in layout.items()),
        ]
    )
    try:
        load_settings(env.name, env_file=Path("/nonexistent"), environ=parse_env(rendered))
    except ConfigError as exc:
        raise UsageError(f"{source}: {exc}", env=env.name) from None
    return rendered + "\n"


def require_supported(root: Path, env: Environment, platform: HostPlatform | None) -> None:
    """Refuse to set up a host no artifact of this project could run on (its targets are
    in pyproject.toml), saying what the host has and what to install."""
    targets = read_targets(root) or LEGACY
    reason = targets.refusal(platform, "its releases offer") if platform else None
    if reason is not None:
        raise UnsupportedHost(
            f"releases of this project cannot run on {env.host}: {reason}",
            hint=f"install one of CPython {', '.join(targets.pythons)} (and set python = "
            '"python3.N" in the env file if it is not python3), or add the host\'s kind to '
            "[tool.helionyx.artifact] in pyproject.toml",
            env=env.name,
        )


def setup_host(ctx: Context, env_file: Path) -> list[str]:
    """Create user, dirs, config (0600) and unit on the host; returns what changed."""
    env = ctx.env
    if not env_file.is_file():
        raise UsageError(
            f"no settings file {env_file}",
            hint=f"copy .env.{env.name}.example (or .env.template) to {env_file.name} and fill it",
            env=env.name,
        )
    mode = env_file.stat().st_mode & 0o777
    if mode & 0o077:
        # Like ssh with a private key: secrets others can read are already leaked.
        raise UsageError(
            f"{env_file} holds secrets but is readable by others (mode {mode:04o})",
            hint=f"chmod 600 {env_file}",
            env=env.name,
        )
    config = render_config(env, env_file.read_text(encoding="utf-8"), env_file)
    if not env.several:
        return _set_up(ctx, config)
    # Every host the same settings and units, at once; a host that fails is named, and the
    # ones that were set up stay set up (running it again changes only what differs).
    done = values(each(ctx, lambda on: _set_up(on, config)), "setup-host")
    return [
        f"{host}: {line}"
        for host, lines in zip(env.hosts, done, strict=True)
        for line in lines or ["nothing to change"]
    ]


def _set_up(ctx: Context, config: str) -> list[str]:
    """Set the env up on the context's one host with the rendered settings `config`."""
    env = ctx.env
    units = render_units(ctx.root, env)
    upload = f"{Path(env.config_file).parent}/.{env.name}.env.upload"
    with reading(ctx, "setup-host") as host, tempfile.TemporaryDirectory() as tmp:
        require_supported(ctx.root, env, host.open().platform)
        remote = host.remote
        # Secrets travel by SFTP into a file that is 0600 before a byte is written, never on a
        # command line (visible in ps) or in a log.
        local = Path(tmp) / "settings"
        local.touch(mode=0o600)
        local.write_text(config, encoding="utf-8")
        prepared = remote.run(
            f"umask 077 && mkdir -p {shlex.quote(str(Path(upload).parent))} && "
            f": > {shlex.quote(upload)} && chmod 600 {shlex.quote(upload)}"
        )
        if prepared.code != 0:
            raise UsageError(f"cannot write {upload} on {env.host}: {prepared.stderr.strip()}")
        remote.put(local, upload)
        request: SetupRequest = {
            "config_upload": upload,
            "units": units,
            "settings": host_settings(env),
        }
        done = host.call(SETUP(request))["done"]
    return done

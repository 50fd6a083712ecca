"""Deployment environments: `deployment/environments/<env>.toml`, overridable from the shell."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from release.errors import UsageError
from release.hosts.envcheck import check

ENV_DIR = Path("deployment") / "environments"


@dataclass(frozen=True)
class Environment:
    """One tier on its hosts: where it lives, how to reach them, how to judge it.

    An env may name several hosts (`hosts = [...]`), each holding the same layout and its own
    data; `host` is the one this value addresses (the first, until `at` picks another).
    """

    name: str
    host: str
    ssh_user: str
    ssh_port: int
    port: int
    unit: str
    base_dir: str
    data_dir: str
    config_file: str
    keep_releases: int
    health_timeout: float
    allow_dev_builds: bool
    listen_address: str = "127.0.0.1"
    keep_backups: int = 7
    ssh_key: str | None = None
    known_hosts: str | None = None
    #: The env releases come from: this one takes only a release that has been good there
    #: for `soak` seconds (`make status` shows how far behind it this one is).
    requires: str | None = None
    soak: float = 0.0
    #: Seconds a deploy keeps watching a release after its health gate (0: none).
    watch: float = 0.0
    #: `telegram:<chat id>`: a message per deploy, promotion and rollback (hosts/notify.py).
    notify: str | None = None
    #: The interpreter the agent and every release run on (a host whose python3 is older,
    #: Ubuntu 20.04's or 22.04's, names a python3.11+ installed beside it).
    python: str = "python3"
    #: Every host of the env, in the file's order (the order locks are taken in).
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.hosts:
            object.__setattr__(self, "hosts", (self.host,))

    @property
    def several(self) -> bool:
        """Whether the env spans more than one host."""
        return len(self.hosts) > 1

    def at(self, host: str) -> Environment:
        """The env on one of its hosts, as a one-host env (what every per-host step acts on)."""
        if host not in self.hosts:
            raise UsageError(f"{host} is not a host of {self.name}", env=self.name)
        return replace(self, host=host, hosts=(host,))

    @property
    def releases_dir(self) -> str:
        """Where complete releases live on the host."""
        return f"{self.base_dir}/releases"


def available(root: Path) -> list[str]:
    """Names of the environments defined under `root`."""
    return sorted(p.stem for p in (root / ENV_DIR).glob("*.toml"))


def load(root: Path, name: str, environ: Mapping[str, str] | None = None) -> Environment:
    """Read one environment, checked strictly, and apply DEPLOY_* overrides from `environ`."""
    environ = os.environ if environ is None else environ
    path = root / ENV_DIR / f"{name}.toml"
    if not name or not path.is_file():
        known = ", ".join(available(root)) or "none"
        raise UsageError(f"unknown environment {name!r}", hint=f"use ENV= one of: {known}")
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{shown} is not a valid environment definition: {exc}") from None
    checked = check(data, shown, available(root))
    if "hosts" in checked:
        checked["hosts"] = tuple(checked["hosts"])
        checked["host"] = checked["hosts"][0]
    env = Environment(**checked)
    if env.name != name:
        raise UsageError(
            f"{shown}: name = {env.name!r}, but the file defines {name!r}",
            hint=f'set name = "{name}" (an env is named by its file)',
        )
    overrides: dict[str, object] = _hosts_override(env, environ, shown)
    for variable, field_name in (
        ("DEPLOY_SSH_USER", "ssh_user"),
        ("DEPLOY_SSH_KEY", "ssh_key"),
        ("DEPLOY_KNOWN_HOSTS", "known_hosts"),
        ("DEPLOY_LISTEN_ADDRESS", "listen_address"),
    ):
        if environ.get(variable):
            overrides[field_name] = environ[variable]
    if environ.get("DEPLOY_SSH_PORT"):
        port = environ["DEPLOY_SSH_PORT"]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"DEPLOY_SSH_PORT={port!r} is not a port number (1-65535)")
        overrides["ssh_port"] = int(port)
    return replace(env, **overrides)  # type: ignore[arg-type]


def _hosts_override(env: Environment, environ: Mapping[str, str], shown: Path) -> dict[str, object]:
    """DEPLOY_HOSTS (comma-separated) replaces the env's hosts; DEPLOY_HOST a one-host env's."""
    if environ.get("DEPLOY_HOSTS"):
        hosts = tuple(h.strip() for h in environ["DEPLOY_HOSTS"].split(","))
        if not all(hosts) or len(set(hosts)) != len(hosts):
            raise UsageError(
                f"DEPLOY_HOSTS={environ['DEPLOY_HOSTS']!r} is not a list of distinct hosts",
                hint="separate the hosts with commas: DEPLOY_HOSTS=10.0.0.1,10.0.0.2",
            )
        return {"hosts": hosts, "host": hosts[0]}
    if environ.get("DEPLOY_HOST"):
        if env.several:
            raise UsageError(
                f"DEPLOY_HOST names one host, but {shown} names {len(env.hosts)}",
                hint="name them all with DEPLOY_HOSTS=host1,host2,…",
                env=env.name,
            )
        return {"hosts": (environ["DEPLOY_HOST"],), "host": environ["DEPLOY_HOST"]}
    return {}

"""The rules an environment file must follow: known keys, their types and their ranges.

A typo (`wacth = 30`) or a wrong type (`health_timeout = "20s"`) is refused in one line naming
the file, the key and what is allowed, before anything is dialled.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from release.errors import UsageError

#: A systemd unit name without its suffix (systemd.unit(5): letters, digits, ":-_.\\").
_UNIT = re.compile(r"[A-Za-z0-9:_.\\-]+")
_NAME = re.compile(r"[a-z][a-z0-9-]*")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return "a non-empty string"


def _hosts(value: Any) -> str | None:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(h, str) and h.strip() and h == h.strip() for h in value)
        and len(set(value)) == len(value)
    ):
        return None
    return 'a list of distinct host names or addresses (hosts = ["node1", "node2"])'


def _name(value: Any) -> str | None:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return None
    return "a lower-case name (letters, digits, '-')"


def _unit(value: Any) -> str | None:
    if isinstance(value, str) and _UNIT.fullmatch(value):
        return None
    return "a systemd unit name without '.service' (letters, digits, ':-_.')"


def _absolute(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/") and ".." not in value.split("/"):
        return None
    return "an absolute path on the host"


def _port(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return None
    return "a port number, an integer from 1 to 65535"


def _count(least: int) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= least:
            return None
        return f"a whole number, at least {least}"

    return rule


def _seconds(*, positive: bool) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (value > 0 if positive else value >= 0):
            return None
        return "a number of seconds" + (", above 0" if positive else ", 0 or more")

    return rule


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _address(value: Any) -> str | None:
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return "an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, …)"
    return None


def _notify(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"telegram:-?[0-9]+", value):
        return None
    return '"telegram:<chat id>" (a number, negative for a group)'


def _interpreter(value: Any) -> str | None:
    # Run by the host's login shell: a command name or a path, nothing a shell would expand.
    if isinstance(value, str) and re.fullmatch(r"python3(\.[0-9]+)?|/[A-Za-z0-9_./-]+", value):
        return None
    return "python3, python3.N or an absolute path to a Python 3.11+ interpreter"


#: Every key an environment file may hold: its rule, and whether the file must set it.
RULES: dict[str, tuple[Callable[[Any], str | None], bool]] = {
    "name": (_name, True),
    # One of the two (checked below): `host` for an env on one host, `hosts` for several.
    "host": (_text, False),
    "hosts": (_hosts, False),
    "ssh_user": (_text, True),
    "ssh_port": (_port, True),
    "port": (_port, True),
    "unit": (_unit, True),
    "base_dir": (_absolute, True),
    "data_dir": (_absolute, True),
    "config_file": (_absolute, True),
    "keep_releases": (_count(1), True),
    "health_timeout": (_seconds(positive=True), True),
    "allow_dev_builds": (_flag, True),
    "listen_address": (_address, False),
    "keep_backups": (_count(1), False),
    "ssh_key": (_text, False),
    "known_hosts": (_text, False),
    "requires": (_name, False),
    "soak": (_seconds(positive=False), False),
    "watch": (_seconds(positive=False), False),
    "notify": (_notify, False),
    "python": (_interpreter, False),
}


def check(data: dict[str, Any], path: Path, known_envs: list[str]) -> dict[str, Any]:
    """`data` as Environment's keywords, or a UsageError naming the first thing wrong."""
    for key in data:
        if key not in RULES:
            close = difflib.get_close_matches(key, RULES, n=1)
            raise UsageError(
                f"{path}: unknown key {key!r}"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"the keys an environment may set: {', '.join(RULES)}",
            )
    for key, (rule, required) in RULES.items():
        if key not in data:
            if required:
                raise UsageError(f"{path}: {key} is missing", hint=f"set {key} to {rule(None)}")
            continue
        wanted = rule(data[key])
        if wanted is not None:
            raise UsageError(
                f"{path}: {key} = {data[key]!r} is not {wanted}",
                hint="docs/CONFIG.md describes every key",
            )
    if ("host" in data) == ("hosts" in data):
        raise UsageError(
            f"{path}: " + ("both host and hosts are set" if "host" in data else "host is missing"),
            hint='set host = "name" for one host, or hosts = ["a", "b"] for several',
        )
    requires = data.get("requires")
    if requires is not None and (requires == data["name"] or requires not in known_envs):
        others = ", ".join(e for e in known_envs if e != data["name"]) or "none"
        raise UsageError(
            f"{path}: requires = {requires!r} is not another environment",
            hint=f"name one of: {others}",
        )
    return data

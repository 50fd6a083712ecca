"""Settings files (KEY=VALUE), read as systemd's EnvironmentFile= reads them.

The one parser of settings files: setup-host validates a file with it before sending it.
"""

from __future__ import annotations

from pathlib import Path


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped, one pair of quotes removed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """Settings from a file; {} if it is absent."""
    return parse_env(path.read_text()) if path.is_file() else {}

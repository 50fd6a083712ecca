"""docs/CONFIG.md names every environment variable the tool and the service read."""

from __future__ import annotations

import re
from pathlib import Path

from helionyx.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "CONFIG.md").read_text()
#: How a variable's name appears where the code reads it.
READS = re.compile(
    r"""environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"|getenv\(\s*"([A-Z][A-Z0-9_]+)"|"""
    r"""_VARIABLE\s*=\s*"([A-Z][A-Z0-9_]+)"|\(\s*"(DEPLOY_[A-Z_]+)",\s*"""
)


def read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in [*(REPO / "release").rglob("*.py"), *(REPO / "src").rglob("*.py")]:
        for match in READS.finditer(path.read_text()):
            names |= {group for group in match.groups() if group}
    return names


def test_the_scan_finds_what_the_code_reads() -> None:
    found = read_by_the_code()
    assert {"DEPLOY_HOST", "DEPLOY_SSH_PORT", "DEPLOY_OPERATOR", "GITHUB_TOKEN"} <= found
    assert {"HELIONYX_NOTIFY_BOT_TOKEN", "LISTEN_FDS", "ENV"} <= found


def test_every_variable_read_is_documented() -> None:
    assert {name for name in read_by_the_code() if f"`{name}`" not in DOC} == set()


def test_every_service_setting_is_documented() -> None:
    settings = {name.upper() for name in Settings.model_fields} - {"ENVIRONMENT"}
    assert {name for name in settings if f"`{name}`" not in DOC} == set()

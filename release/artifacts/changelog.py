"""CHANGELOG.md in Keep a Changelog form: the Unreleased section becomes a release."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from packaging.version import Version

from release.errors import ChangelogError

_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?P<rest>.*)$", re.MULTILINE)


def _sections(text: str) -> list[tuple[str, int, int]]:
    """(name, start of heading, end of section) for every `## [...]` section."""
    matches = list(_HEADING.finditer(text))
    sections = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        # Link reference definitions at the bottom belong to no section.
        tail = re.search(r"^\[[^\]]+\]: ", text[match.end() : end], re.MULTILINE)
        if tail:
            end = match.end() + tail.start()
        sections.append((match.group("name"), match.start(), end))
    return sections


def section(text: str, name: str) -> str | None:
    """The body of section `name` (without its heading), or None."""
    for found, start, end in _sections(text):
        if found == name:
            body = text[start:end].split("\n", 1)[1] if "\n" in text[start:end] else ""
            return body.strip()
    return None


def release_notes(path: Path, version: Version) -> str:
    """The CHANGELOG section for `version`, or raise when it has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChangelogError(
            f"cannot read the release notes of {version} in {path}: "
            f"{getattr(exc, 'strerror', None) or exc}",
            hint="publish from the repository the release was cut in",
        ) from None
    notes = section(text, str(version))
    if notes is None:
        raise ChangelogError(
            f"{path.name} has no section for {version}",
            hint=f"add '## [{version}] - YYYY-MM-DD' (make release does this)",
        )
    return notes


#: The release-notes headings a release that changes data must fill (docs/RELEASING.md).
DATA_NOTES = ("Migration", "Rollback")


def require_data_notes(text: str, change: str) -> None:
    """Refuse an Unreleased section without filled `### Migration` and `### Rollback` notes
    (for a release whose data contract changed: `change` says how)."""
    unreleased = section(text, "Unreleased") or ""
    missing = [
        heading
        for heading in DATA_NOTES
        if not re.search(rf"^### {heading}\s*\n+\s*\S", unreleased, re.MULTILINE)
    ]
    if missing:
        raise ChangelogError(
            f"this release changes data ({change}) but CHANGELOG.md's Unreleased section has "
            f"no {' or '.join(missing)} notes",
            hint="add '### Migration' (what the deploy does, MIGRATE=1 or not) and "
            "'### Rollback' (whether and how to go back) under '## [Unreleased]'",
        )


def cut_release(text: str, version: Version, on: date) -> str:
    """Move the Unreleased entries under a new `## [version] - date` heading."""
    names = [name for name, _, _ in _sections(text)]
    if "Unreleased" not in names:
        raise ChangelogError("CHANGELOG.md has no '## [Unreleased]' section", hint="add one")
    if str(version) in names:
        raise ChangelogError(f"CHANGELOG.md already has a section for {version}")
    unreleased = section(text, "Unreleased") or ""
    if not re.search(r"^\s*[-*] ", unreleased, re.MULTILINE):
        raise ChangelogError(
            "the Unreleased section of CHANGELOG.md is empty",
            hint="describe the changes under '## [Unreleased]' first",
        )
    start, end = next((s, e) for n, s, e in _sections(text) if n == "Unreleased")
    released = f"## [Unreleased]\n\n## [{version}] - {on.isoformat()}\n\n{unreleased}\n\n"
    return text[:start] + released + text[end:].lstrip("\n")

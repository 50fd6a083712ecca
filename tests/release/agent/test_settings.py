"""The host agent's pure helpers, run here: it is standard-library Python like any other."""

from __future__ import annotations

from release.agent.settings import parse_env


def test_settings_files_are_read_as_systemd_reads_them() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "API_PORT=8001",
            "TOKEN='quoted value'",
            'OTHER="x=y"',
            "  SPACED = kept  ",
            "HALF='open",
            "not a setting",
        ]
    )
    assert parse_env(text) == {
        "API_PORT": "8001",
        "TOKEN": "quoted value",
        "OTHER": "x=y",
        "SPACED": "kept",
        "HALF": "'open",
    }

"""No secret reaches a log, a journal, the deploy log, an artifact or any command's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.hosts.setup import fill_settings
from tests.release.artifacts import github_standin
from tests.release.conftest import REPO, Result
from tests.release.deploykit import NodeHandle, Project

pytestmark = pytest.mark.node

# Recognisable values: each must appear only in the two 0600 settings files that hold it.
PLANTED = {
    "HELIONYX_API_TOKEN": "apitoken-PLANTED-7f3a9c1e5b2d4f60",
    "TELEGRAM_BOT_TOKEN": "123456:telegram-PLANTED-8e2b7d1c9a4f",
    "OPENAI_API_KEY": "sk-openai-PLANTED-5d9e2c7b1a0f",
}
GITHUB_TOKEN = "ghp_github-PLANTED-0123456789abcdef"
SECRETS = [*PLANTED.values(), GITHUB_TOKEN]


def test_planted_secrets_appear_nowhere_but_their_0600_files(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    settings = fill_settings(
        REPO / ".env.staging.example",
        tmp_path / "staging.env",
        {**PLANTED, "TELEGRAM_CHAT_ID": "4242"},
    )
    said: list[tuple[str, Result]] = []

    def cli(*args: str, extra: dict[str, str] | None = None) -> Result:
        result = project.cli(*args, env={**node.env, **(extra or {})})
        said.append((" ".join(args), result))
        return result

    with github_standin.serving("OWNER", "REPO", GITHUB_TOKEN) as github:
        store = "github:OWNER/REPO"
        gh = {"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": github.api_url}
        assert cli("setup-host", "--env", "staging", "--env-file", str(settings)).code == 0
        for version in ("v0.1.0", "v0.2.1"):
            assert cli("publish", "--version", version, "--store", store, extra=gh).code == 0
        refused = cli(
            "publish",
            "--version",
            "v0.1.0",
            "--store",
            store,
            extra={**gh, "GITHUB_TOKEN": GITHUB_TOKEN[::-1]},
        )
        assert refused.code != 0, "a wrong token is refused"
        deployed = cli(
            "deploy", "--env", "staging", "--version", "v0.1.0", "--store", store, extra=gh
        )
        assert deployed.code == 0, deployed.stderr
        # The failing-health path prints the journal: the service logged with Telegram on.
        broken = cli(
            "deploy", "--env", "staging", "--version", "v0.2.1", "--store", store, extra=gh
        )
        assert broken.code != 0 and "last journal lines" in broken.stderr
    token = PLANTED["HELIONYX_API_TOKEN"]
    node.ssh(
        f"curl -sf -H 'Authorization: Bearer {token}' http://127.0.0.1:8001/api/v1/state >/dev/null"
        f" && curl -s -H 'Authorization: Bearer wrong-{token}' http://127.0.0.1:8001/api/v1/state"
    )
    for args in (
        ("status", "--env", "staging"),
        ("status", "--env", "staging", "--format", "json"),
        ("releases", "--env", "staging"),
        ("logs", "--env", "staging", "--lines", "1000"),
    ):
        assert cli(*args).code == 0

    places = {f"the output of `{args}`": r.stdout + r.stderr for args, r in said}
    places["the node's whole journal"] = node.ssh("journalctl --no-pager -o verbose", timeout=120)
    places["the deploy log"] = node.ssh("cat /opt/helionyx/staging/deploy-log.jsonl")
    places["the node's processes"] = node.ssh("ps -eo args")
    places["files on the node but the settings file"] = node.ssh(
        "grep -rl -e PLANTED /opt /var/lib/helionyx /var/log /tmp /etc "
        "--exclude=staging.env 2>/dev/null || true"
    )
    store_files = [p for p in (project.repo / "dist").rglob("*") if p.is_file()]
    places["the artifacts"] = "\n".join(
        p.name for p in store_files if any(s.encode() in p.read_bytes() for s in SECRETS)
    )
    # Controls: the planted values are live (the host's settings hold them, Telegram ran with its
    # token, the API accepted the token), so their absence elsewhere means something.
    assert node.ssh("grep -c PLANTED /etc/helionyx/staging.env").strip() == "3"
    assert "adapters: telegram on" in places["the node's whole journal"]
    for place, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"a planted secret leaked into {place}"
    assert "PLANTED" not in places["files on the node but the settings file"]
    assert node.ssh("stat -c '%U %a' /etc/helionyx/staging.env").split() == ["root", "600"]
    assert settings.stat().st_mode & 0o777 == 0o600

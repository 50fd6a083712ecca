"""DEPLOYMENT.md's happy path, run as written against the test node.

Every `sh` block of the guide from "Or by hand" on is one step of the walk; a block preceded by
`<!-- not walked: … -->` is not. The commands run in a scratch clone of this project (the
operator's checkout, with `.env.<env>` filled in and an `origin` to push to), against a freshly
booted test node and a stand-in of GitHub's release API named `OWNER/REPO`, exactly as the
guide spells them. The release block runs twice: first for the v0.3.0 the guide says is
already live (its version replaced), then as written for v0.3.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from release.artifacts.git import snapshot_work_tree
from release.hosts.setup import fill_settings
from tests.release.artifacts import github_standin

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "DEPLOYMENT.md"
TOKEN = "walk-test-api-token-0123456789"
GITHUB_TOKEN = "ghp_walkthroughstandintoken000000000000"


#: The change the guide's "Releases that change data" ships: projections schema 2, with the
#: release notes `make release` then requires.
DATA_CHANGE = """
python3 - <<'PY'
from pathlib import Path
p = Path("src/helionyx/domain/projections.py")
table = "CREATE TABLE tags (name TEXT PRIMARY KEY);\\n"
p.write_text(p.read_text().replace("SCHEMA_VERSION = 1\\n", "SCHEMA_VERSION = 2\\n", 1)
    .replace("CREATE TABLE meta (", table + "CREATE TABLE meta (", 1))
c = Path("CHANGELOG.md")
notes = ("- A tags table.\\n\\n### Migration\\n\\nDeploy with MIGRATE=1.\\n\\n"
         "### Rollback\\n\\nSafe: 0.3.1 keeps its read model.\\n")
c.write_text(c.read_text().replace("## [Unreleased]\\n", "## [Unreleased]\\n\\n" + notes, 1))
PY
git commit --quiet -am 'feat: a tags table (projections schema 2)'
"""


def walked_blocks() -> list[str]:
    """The guide's `sh` blocks from "Or by hand" on, minus those marked as not walked."""
    text = GUIDE.read_text()
    text = text[text.index("Or by hand") :]
    blocks = re.finditer(r"(<!-- not walked:[^>]*-->\n)?```sh\n(.*?)```", text, re.DOTALL)
    return [match.group(2) for match in blocks if not match.group(1)]


def test_the_guide_walks_setup_release_deploy_operate_and_rollback() -> None:
    blocks = walked_blocks()
    joined = "\n".join(blocks)
    for command in (
        "make testnode-up",
        "make setup-host ENV=live",
        "make release VERSION=0.3.1",
        "make publish",
        "make deploy ENV=staging",
        "make promote FROM=staging TO=live",
        "make status ENV=live",
        "make rollback ENV=live",
        "make backup ENV=live",
    ):
        assert command in joined, f"the walked part of the guide no longer says {command!r}"
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for word in re.findall(r"\bmake (?:-s )?([a-z][\w-]*)", joined):
        assert word in targets, f"the guide calls make {word}, which does not exist"


@pytest.mark.node
def test_the_deployment_guide_happy_path_runs_as_written(tmp_path: Path) -> None:
    clone = tmp_path / "operator"
    snapshot_work_tree(REPO, clone, "the operator's checkout")
    # The operator's own venv: this checkout's, whose lock the clone shares byte for byte.
    (clone / ".venv").symlink_to(REPO / ".venv")
    # .gitignore's `.venv/` matches a directory, not this link; the tree must stay clean.
    (clone / ".git" / "info" / "exclude").write_text(".venv\n")
    for env in ("dev", "staging", "live"):
        fill_settings(
            REPO / f".env.{env}.example", clone / f".env.{env}", {"HELIONYX_API_TOKEN": TOKEN}
        )
    # The guide's staging gate with no soak: the walk promotes as soon as staging is healthy.
    live = clone / "deployment" / "environments" / "live.toml"
    live.write_text(
        live.read_text().replace("soak = 300", "soak = 0").replace("watch = 30", "watch = 1")
    )
    staging = clone / "deployment" / "environments" / "staging.toml"
    staging.write_text(staging.read_text().replace("watch = 10", "watch = 1"))
    subprocess.run(
        ["git", "-C", str(clone), "commit", "--quiet", "-am", "walk: no soak"], check=True
    )
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    subprocess.run(["git", "-C", str(clone), "remote", "add", "origin", str(origin)], check=True)
    subprocess.run(
        [sys.executable, str(REPO / "deployment" / "testnode" / "testnode.py"), "down"],
        capture_output=True,
        check=True,
        timeout=120,
    )

    node, setup, ship, operate, rollback, data, backups = walked_blocks()
    next_change = (
        "sed -i 's/^## \\[Unreleased\\]$/## [Unreleased]\\n\\n- The next change./' CHANGELOG.md\n"
        "git commit --quiet -am 'feat: the next change'\n"
    )
    script = "\n".join(
        [
            "set -euo pipefail",
            node,
            setup,
            ship.replace("0.3.1", "0.3.0"),
            next_change,
            ship,
            operate,
            rollback,
            backups,
            DATA_CHANGE,
            data,
            f"make status ENV=live FORMAT=json > {tmp_path / 'final-status.json'}",
        ]
    )
    with github_standin.serving("OWNER", "REPO", GITHUB_TOKEN) as github:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=1200,
            env={
                # An operator's shell: not inside `make test` (a sub-make prints "Entering …").
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("DEPLOY_", "MAKE", "MFLAGS"))
                },
                "GITHUB_TOKEN": GITHUB_TOKEN,
                "GITHUB_API_URL": github.api_url,
            },
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "SHA256SUMS" in github.asset_names("v0.3.1")
    for env in ("dev", "staging"):
        assert re.search(rf"deployed 0\.3\.1 \(\w+\) to {env} in", output), env
    assert re.search(r"promoted 0\.3\.1 \(\w+\) to live in", output)
    assert "rolled back live to 0.3.0" in output
    assert "rolled back live to 0.3.1" in output
    assert re.search(r"backed up live: \d{8}T\d{6}Z", output)
    assert "read model rebuilt: projections schema 1 -> 2" in output
    assert re.search(r"promoted 0\.4\.0 \(\w+\) to live in", output)
    # Forward again by name in the rollback block, then back from 0.4.0 here.
    assert output.count("rolled back live to 0.3.1") == 2
    final = json.loads((tmp_path / "final-status.json").read_text())
    assert (final["version"], final["healthy"]) == ("0.3.1", True)

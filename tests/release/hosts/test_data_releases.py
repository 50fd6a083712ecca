"""Releases that change data, on the real test node with real releases (issue 15):
v1; v2 changes the projections schema; v3 writes a new version of an existing event type."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.release.conftest import git, make_project_repo
from tests.release.deploykit import (
    IngestLoad,
    NodeHandle,
    Project,
    deploy,
    deploy_args,
    deploy_in_background,
    event_ids,
    ingest_url,
    setup_env,
    wait_until,
)

pytestmark = pytest.mark.node

ENV = "staging"
PROJECTIONS = "src/helionyx/domain/projections.py"
EVENTS = "src/helionyx/domain/events.py"
NOTES = """
### Migration

{migration}

### Rollback

{rollback}
"""


def change(
    project: Project, message: str, entry: str, notes: str, *edits: tuple[str, str, str]
) -> None:
    """Commit source edits with a CHANGELOG entry and its Migration/Rollback notes."""
    for path, old, new in edits:
        target = project.repo / path
        text = target.read_text()
        assert old in text, f"{old!r} not in {path}"
        target.write_text(text.replace(old, new, 1))
    log = project.repo / "CHANGELOG.md"
    log.write_text(
        log.read_text().replace("## [Unreleased]\n", f"## [Unreleased]\n\n- {entry}\n{notes}\n", 1)
    )
    git(project.repo, "commit", "--quiet", "-am", message)


@pytest.fixture(scope="session")
def data_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """1.0.0; 2.0.0 with projections schema 2 (a new table); 3.0.0 writing NoteCaptured v2."""
    project = Project(make_project_repo(tmp_path_factory.mktemp("data-releases")))
    project.release("1.0.0")
    change(
        project,
        "feat: tags table",
        "A tags table in the read model.",
        NOTES.format(
            migration="Deploy with MIGRATE=1.", rollback="Safe: 1.0.0 keeps its read model."
        ),
        (PROJECTIONS, "SCHEMA_VERSION = 1\n", "SCHEMA_VERSION = 2\n"),
        (
            PROJECTIONS,
            "CREATE TABLE meta (",
            "CREATE TABLE tags (name TEXT PRIMARY KEY);\nCREATE TABLE meta (",
        ),
    )
    project.release("2.0.0")
    change(
        project,
        "feat: notes v2",
        "Notes are written as schema version 2.",
        NOTES.format(migration="None.", rollback="Not to 2.0.0 once a note is written."),
        (EVENTS, "    NOTE_CAPTURED: 1,\n", "    NOTE_CAPTURED: 2,\n"),
    )
    project.release("3.0.0")
    yield project


def cli(project: Project, node: NodeHandle, *args: str, **extra: str) -> Any:
    return project.cli(*args, env={**node.env, **extra})


def migrate(project: Project, node: NodeHandle, version: str) -> Any:
    """`make deploy MIGRATE=1`."""
    return cli(project, node, *deploy_args(project, ENV, version), "--migrate")


def plan(project: Project, node: NodeHandle, version: str) -> dict[str, Any]:
    done = cli(
        project,
        node,
        "plan",
        "--env",
        ENV,
        "--version",
        version,
        "--store",
        project.store,
        "--format",
        "json",
    )
    assert done.code == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bulk_events(node: NodeHandle, sha: str, count: int) -> None:
    """`count` messages appended to the env's log as the service would (as its user)."""
    script = (
        "from pathlib import Path; from helionyx.domain.store import EventStore; "
        "from helionyx.domain.events import Event, MESSAGE_INGESTED; "
        f"s = EventStore(Path('/var/lib/helionyx/{ENV}/events'), fsync=False); s.open(); "
        f"[s.append([Event(MESSAGE_INGESTED, {{'text': f'bulk {{b}} {{i}}', 'source': 'api', "
        f"'chat_id': None}}) for i in range(1000)]) for b in range({count // 1000})]"
    )
    node.ssh(
        f"cd /tmp && runuser -u helionyx -- /opt/helionyx/{ENV}/releases/{sha}/venv/bin/python "
        f'-c "{script}"',
        timeout=300,
    )


def listing(node: NodeHandle) -> str:
    """Every file under the env's directories with its size and mtime."""
    return node.ssh(
        f"find /opt/helionyx/{ENV} /var/lib/helionyx/{ENV} -printf '%p %s %T@\\n' | sort"
    )


def read_models(node: NodeHandle) -> list[str]:
    out = node.ssh(f"ls /var/lib/helionyx/{ENV}/projections/")
    return sorted(n for n in out.split() if n.endswith(".db"))


def state_equals_a_rebuild(node: NodeHandle, sha: str, schema: int) -> None:
    """The read model in use equals one rebuilt from the log into a scratch file."""
    name = "projections.db" if schema == 1 else f"projections.v{schema}.db"
    script = (
        "import sys; from pathlib import Path; "
        "from helionyx.domain.projections import Projections, rebuild; "
        "from helionyx.domain.store import EventStore; "
        f"store = EventStore(Path('/var/lib/helionyx/{ENV}/events')); store.open(); "
        "rebuild(Path('/tmp/rebuilt.db'), store); "
        "a = Projections(Path(sys.argv[1])); a.open(); b = Projections(Path('/tmp/rebuilt.db')); "
        "b.open(); print(a.snapshot() == b.snapshot(), a.applied, b.applied)"
    )
    out = node.ssh(
        f'cd /tmp && /opt/helionyx/{ENV}/releases/{sha}/venv/bin/python -c "{script}" '
        f"/var/lib/helionyx/{ENV}/projections/{name}"
    )
    assert out.split()[0] == "True", out


def test_a_release_that_changes_data_goes_out_explicitly_and_comes_back_safely(
    data_project: Project, node: NodeHandle
) -> None:
    project, shas = data_project, data_project.shas
    # The writers below reach the env from outside the node.
    node.env["DEPLOY_LISTEN_ADDRESS"] = "0.0.0.0"
    setup_env(project, node, ENV)
    assert deploy(project, node, ENV, "1.0.0").code == 0
    for number in range(3):
        node.ingest(ENV, f"todo: before {number}")

    # The plan says what 2.0.0 would do; without MIGRATE=1 it is refused, host untouched.
    ahead = plan(project, node, "2.0.0")
    assert (ahead["current_sha"], ahead["target_sha"]) == (shas["1.0.0"], shas["2.0.0"])
    assert ahead["projections_rebuild"] is True and ahead["rollback_safe"] is True
    assert ahead["lock_changed"] is False and ahead["prune"] == []
    assert [c.split(" ", 1)[1] for c in ahead["commits"]][:2] == [
        "chore(release): v2.0.0",
        "feat: tags table",
    ]
    before = listing(node)
    refused = deploy(project, node, ENV, "2.0.0")
    assert refused.code == 2
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("error: 2.0.0 needs a new read model (projections schema 1 -> 2)")
    )
    assert listing(node) == before, "every file under the env's dirs unchanged"

    # With MIGRATE=1 under steady ingest load: nothing fails, nothing is lost.
    with IngestLoad(ingest_url(node, ENV)) as load:
        load.wait_for_more(20)
        done = migrate(project, node, "2.0.0")
        load.wait_for_more(20)
    assert done.code == 0, done.stderr
    assert "read model rebuilt: projections schema 1 -> 2" in done.stdout
    logged = set(event_ids(node, ENV))
    assert set(load.acknowledged) <= logged, "no acknowledged event lost"
    assert read_models(node) == ["projections.db", "projections.v2.db"], "1.0.0's still there"
    state_equals_a_rebuild(node, shas["2.0.0"], 2)
    finish = json.loads(
        node.ssh(f"grep '\"finish\"' /opt/helionyx/{ENV}/deploy-log.jsonl | tail -1")
    )
    assert finish["migrated"] == "projections schema 1 -> 2" and finish["outcome"] == "succeeded"

    # Back to 1.0.0: no rebuild, and it serves every event written under 2.0.0.
    node.ingest(ENV, "todo: under 2.0.0")
    back = cli(project, node, "rollback", "--env", ENV)
    assert back.code == 0, back.stderr
    code, todos = node.http(ENV, "/api/v1/todos", token=True)
    assert code == 200 and "under 2.0.0" in [t["text"] for t in todos]
    code, state = node.http(ENV, "/api/v1/state", token=True)
    assert state["projections"]["applied"] == state["events"]["total"] == len(event_ids(node, ENV))
    state_equals_a_rebuild(node, shas["1.0.0"], 1)

    # 3.0.0 writes NoteCaptured v2; 2.0.0 cannot read that: the rollback is refused.
    assert deploy(project, node, ENV, "2.0.0").code == 0
    ahead = plan(project, node, "3.0.0")
    assert ahead["rollback_safe"] is False and ahead["projections_rebuild"] is False
    assert deploy(project, node, ENV, "3.0.0").code == 0
    node.ingest(ENV, "note: written as version 2")
    refused = cli(project, node, "rollback", "--env", ENV)
    assert refused.code == 2
    assert (
        "2.0.0 (" in refused.stderr
        and "cannot read the event log: it holds NoteCaptured events of schema version 2"
        in refused.stderr
    )
    assert node.current(ENV) == shas["3.0.0"]
    # FORCE=1: done and recorded. 2.0.0 serves what it can read, says what it skips, and keeps
    # its read model apart from 3.0.0's (the same schema), which it never touches.
    newer_model = f"md5sum /var/lib/helionyx/{ENV}/projections/projections.v2.db*"
    forced = cli(
        project, node, "rollback", "--env", ENV, "--force", "--reason", "3.0.0 loses todos"
    )
    assert forced.code == 0, forced.stderr
    assert node.current(ENV) == shas["2.0.0"]
    code, health = node.http(ENV, "/health")
    assert code == 200 and health["version"] == "2.0.0"
    assert health["unreadable_events"] == {"NoteCaptured v2": 1}
    shown = cli(project, node, "status", "--env", ENV).stdout
    assert "skipping   1 NoteCaptured v2 event(s) it cannot read" in shown, shown
    models_before = node.ssh(newer_model)  # 3.0.0 stopped: its read model as it left it
    node.ingest(ENV, "note: written by 2.0.0, forced")
    code, notes = node.http(ENV, "/api/v1/notes", token=True)
    texts = [n["text"] for n in notes]
    assert "written by 2.0.0, forced" in texts and "written as version 2" not in texts
    assert node.ssh(newer_model) == models_before, "3.0.0's read model untouched"
    finish = json.loads(
        node.ssh(f"grep '\"finish\"' /opt/helionyx/{ENV}/deploy-log.jsonl | tail -1")
    )
    assert (finish["action"], finish["outcome"], finish["forced"]) == (
        "rollback",
        "succeeded",
        "3.0.0 loses todos",
    )

    # Forward to 3.0.0 again: every note, both releases' own, in a read model that equals a
    # rebuild; the forced read model is gone.
    assert deploy(project, node, ENV, "3.0.0").code == 0
    code, notes = node.http(ENV, "/api/v1/notes", token=True)
    texts = [n["text"] for n in notes]
    assert {"written as version 2", "written by 2.0.0, forced"} <= set(texts)
    state_equals_a_rebuild(node, shas["3.0.0"], 2)
    assert "projections.v2.forced.db" not in read_models(node)


def test_a_migrating_deploy_killed_during_the_build_leaves_the_old_release_serving(
    data_project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    project, shas = data_project, data_project.shas
    setup_env(project, node, ENV)
    assert deploy(project, node, ENV, "1.0.0").code == 0
    # Enough events that building 2.0.0's read model takes a while to be killed in.
    bulk_events(node, shas["1.0.0"], 40_000)
    background = deploy_in_background(
        project,
        node,
        ENV,
        "2.0.0",
        tmp_path / "deploy.log",
        "--migrate",
        HELIONYX_PAUSE_AFTER="build",
    )
    background.wait_for("paused after build")
    # Let it go on into the read-model build, and kill it there.
    background.process.send_signal(signal.SIGUSR1)
    wait_until(
        lambda: "rebuild-projections" in node.ssh("ps -eo args", check=False) or None,
        30,
        "the build",
    )
    background.kill()
    assert node.current(ENV) == shas["1.0.0"]
    code, health = node.http(ENV, "/health")
    assert code == 200 and health["version"] == "1.0.0", "the old release still serves"
    again = migrate(project, node, "2.0.0")
    assert again.code == 0, again.stderr
    assert node.current(ENV) == shas["2.0.0"]
    state_equals_a_rebuild(node, shas["2.0.0"], 2)

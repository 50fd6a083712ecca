"""Backups taken while the service writes, restored into another environment, exactly."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.release.deploykit import (
    TOKEN,
    IngestLoad,
    NodeHandle,
    Project,
    event_ids,
    ingest_url,
    setup_env,
)

pytestmark = pytest.mark.node


def test_a_backup_of_live_under_load_restores_into_staging_up_to_its_position(
    project: Project, node: NodeHandle, tmp_path: Path
) -> None:
    listen = {**node.env, "DEPLOY_LISTEN_ADDRESS": "0.0.0.0"}  # the writers here reach live
    live_file = str(project.env_file("live"))
    assert project.cli("setup-host", "--env", "live", "--env-file", live_file, env=listen).code == 0
    deploy = ("deploy", "--version", "0.1.0", "--store", project.store)
    assert project.cli(*deploy, "--env", "live", env=listen).code == 0
    setup_env(project, node, "staging")
    assert project.cli(*deploy, "--env", "staging", env=node.env).code == 0
    staging_before = node.ingest("staging", "staging's own message, to be kept aside")

    with IngestLoad(ingest_url(node, "live")) as load:
        load.wait_for_more(50)
        taken = project.cli("backup", "--env", "live", env=node.env)
        load.wait_for_more(50)
    assert taken.code == 0, taken.stderr
    found = re.search(r"backed up live: (\S+) \((\d+) events", taken.stdout)
    assert found, taken.stdout
    backup_id, count = found.group(1), int(found.group(2))
    live = event_ids(node, "live")
    assert 0 < count < len(live), "the backup ended mid-load, before the last writes"

    restored = project.cli(
        "restore", "--env", "staging", "--from", f"live/{backup_id}", env=node.env
    )
    assert restored.code == 0, restored.stderr
    assert event_ids(node, "staging") == live[:count], "exactly live's log up to the position"
    state = node.http("staging", "/api/v1/state", token=True)[1]
    assert state["events"]["total"] == count and state["projections"]["current"] is True
    aside = node.ssh("cat /var/lib/helionyx/staging/events.replaced-*/events-*.jsonl")
    assert staging_before in aside, "what the restore replaced is kept, not deleted"
    assert node.ssh("stat -c '%U %a' /var/lib/helionyx/staging/events").split() == [
        "helionyx",
        "750",
    ]

    # A backup that changed on disk is refused before anything is touched.
    path = f"/var/backups/helionyx/live/{backup_id}"
    node.ssh(f"sed -i '1s/writer/WRITER/' {path}/events/$(ls {path}/events | head -1)")
    before = node.ssh("ls -la --time-style=full-iso /var/lib/helionyx/staging")
    refused = project.cli(
        "restore", "--env", "staging", "--from", f"live/{backup_id}", env=node.env
    )
    assert refused.code != 0
    (line,) = refused.stderr.strip().splitlines()
    assert "checksum mismatch" in line, line
    assert node.ssh("ls -la --time-style=full-iso /var/lib/helionyx/staging") == before
    assert node.http("staging", "/health")[0] == 200

    # A backup whose checksums hold but whose log the release cannot read: the restore fails
    # part-way and puts staging back exactly as it was, running.
    bad = "/var/backups/helionyx/live/20000101T000000Z"
    node.ssh(
        f"cp -a {path} {bad} && cd {bad} && f=events/$(ls events | head -1) && "
        "sed -i '1i not an event' $f && "
        "sha256sum $(find . -type f ! -name SHA256SUMS -printf '%P\\n' | sort) > SHA256SUMS"
    )
    restored_ids = event_ids(node, "staging")
    aside_before = node.ssh("ls -d /var/lib/helionyx/staging/*.replaced-*").split()
    failed = project.cli(
        "restore", "--env", "staging", "--from", "live/20000101T000000Z", env=node.env
    )
    assert failed.code != 0
    (line,) = failed.stderr.strip().splitlines()
    assert "rebuilding projections failed" in line, line
    assert event_ids(node, "staging") == restored_ids
    assert node.ssh("ls -d /var/lib/helionyx/staging/*.replaced-*").split() == aside_before
    assert node.http("staging", "/health/ready")[0] == 200

    # Listing, pulling, retention by count (7 by default).
    pulled = project.cli("backup", "--env", "staging", "--pull", str(tmp_path), env=node.env)
    assert pulled.code == 0, pulled.stderr
    (local,) = (tmp_path / "staging").iterdir()
    for entry in (local / "SHA256SUMS").read_text().splitlines():
        digest, _, name = entry.partition("  ")
        assert hashlib.sha256((local / name).read_bytes()).hexdigest() == digest
    assert json.loads((local / "manifest.json").read_text())["event_count"] == count
    assert local.stat().st_mode & 0o777 == 0o700
    for _ in range(7):
        assert project.cli("backup", "--env", "staging", env=node.env).code == 0
    listed = project.cli("backups", "--env", "staging", "--format", "json", env=node.env)
    ids = [b["id"] for b in json.loads(listed.stdout)]
    assert len(ids) == 7 and local.name not in ids, "the oldest beyond seven were removed"
    assert TOKEN not in taken.stdout + restored.stdout + listed.stdout

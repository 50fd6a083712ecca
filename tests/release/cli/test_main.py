"""`release.cli.main` in-process: every subcommand against the in-process host
(tests/release/inprocess.py), with the exit codes and one-line errors an operator sees.
No root, no node, no build."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from release.agent.protocol import DataContract, TargetsRecord
from release.cli import main
from release.errors import LockHeld, NotFound, UsageError
from release.hosts.environments import Environment
from release.hosts.remote import Remote
from release.hosts.setup import fill_settings
from tests.release.cli.clikit import Cli
from tests.release.conftest import tree_listing
from tests.release.inprocess import REPO, TOKEN, PretendHost


@pytest.fixture
def cli(host: PretendHost, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(host, capsys)


@pytest.fixture
def dev(host: PretendHost) -> Environment:
    env = host.peer("dev")
    host.set_up(env)
    return env


def untouched(host: PretendHost) -> dict[str, tuple[int, int]]:
    return tree_listing(host.root)


def test_deploy_prints_its_steps_and_one_result_line(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    sha = host.artifact("0.1.0")
    ran = cli.deploy("dev", "0.1.0")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[0] == f"deploying 0.1.0 ({sha[:12]}) to dev on node1"
    assert ran.out.splitlines()[-1].startswith(f"deployed 0.1.0 ({sha[:12]}) to dev in ")
    for step in ("connect", "fetch + verify", "plan", "lock", "upload", "build", "go live"):
        assert f"\n  {step} " in ran.out
    again = cli.deploy("dev", "0.1.0")
    assert again.code == 0 and "already deployed 0.1.0" in again.out


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (
            ["deploy", "--env", "nope", "--version", "0.1.0"],
            UsageError.exit_code,
            "unknown environment 'nope'",
        ),
        (["deploy", "--env", "dev", "--version", "7.7.7"], NotFound.exit_code, "7.7.7"),
        (["plan", "--env", "dev", "--version", "7.7.7"], NotFound.exit_code, "7.7.7"),
        (
            ["deploy", "--env", "dev", "--version", "0.1.0", "--store", "ftp:x"],
            UsageError.exit_code,
            "unknown store scheme 'ftp'",
        ),
        (
            ["deploy", "--env", "dev", "--version", "0.1.0", "--store", "nowhere"],
            UsageError.exit_code,
            "is not SCHEME:WHERE",
        ),
        (["rollback", "--env", "dev"], UsageError.exit_code, "no previous good release"),
        (["rollback", "--env", "dev", "--force"], UsageError.exit_code, "FORCE=1 needs a reason"),
        (["restart", "--env", "dev"], UsageError.exit_code, "nothing is deployed to dev"),
        (
            ["restore", "--env", "dev", "--from", "dev/"],
            UsageError.exit_code,
            "FROM names no backup",
        ),
        (
            ["restore", "--env", "dev", "--from", "20990101T000000Z"],
            UsageError.exit_code,
            "no backup 20990101T000000Z of dev",
        ),
        (
            ["promote", "--from", "dev", "--to", "dev"],
            UsageError.exit_code,
            "FROM and TO are both dev",
        ),
        (
            ["promote", "--from", "dev", "--to", "staging"],
            UsageError.exit_code,
            "dev is not healthy (nothing is deployed)",
        ),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit_and_changes_nothing(
    cli: Cli, host: PretendHost, dev: Environment, argv: list[str], code: int, expected: str
) -> None:
    host.artifact("0.1.0")
    if "--store" not in argv and argv[0] in ("deploy", "plan", "promote"):
        argv = [*argv, "--store", cli.store]
    before = untouched(host)
    ran = cli(*argv)
    assert ran.code == code
    assert expected in ran.error
    assert untouched(host) == before


def test_a_deploy_to_an_env_never_set_up_says_how(cli: Cli, host: PretendHost) -> None:
    host.artifact("0.1.0")
    ran = cli.deploy("dev", "0.1.0")
    assert ran.code != 0
    assert "make setup-host ENV=dev" in ran.error


def test_a_held_lock_is_named_and_refused(cli: Cli, host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    lock = Path(dev.base_dir) / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(
        json.dumps(
            {
                "holder": "alice",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "command": "deploy 0.9.0",
                "started_at": "2026-12-05T10:00:00Z",
                "token": "t",
            }
        )
    )
    ran = cli.deploy("dev", "0.1.0")
    assert ran.code == LockHeld.exit_code
    assert "alice" in ran.error and "deploy 0.9.0" in ran.error
    assert host.current(dev) is None
    unlocked = cli("unlock", "--env", "dev")
    assert unlocked.code == UsageError.exit_code and "still running" in unlocked.error
    assert lock.is_dir()


def test_plan_is_read_only_in_both_formats(cli: Cli, host: PretendHost, dev: Environment) -> None:
    first, second = host.artifact("0.1.0"), host.artifact("0.2.0")
    assert cli.deploy("dev", "0.1.0").code == 0
    before = untouched(host)
    table = cli("plan", "--env", "dev", "--version", "0.2.0", "--store", cli.store)
    assert table.code == 0 and first[:12] in table.out and second[:12] in table.out
    data = json.loads(
        cli(
            "plan", "--env", "dev", "--version", "0.2.0", "--store", cli.store, "--format", "json"
        ).out
    )
    assert (data["current_sha"], data["target_sha"]) == (first, second)
    assert untouched(host) == before


def test_rollback_returns_to_the_previous_release(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    first = host.artifact("0.1.0")
    host.artifact("0.2.0")
    cli.deploy("dev", "0.1.0")
    cli.deploy("dev", "0.2.0")
    ran = cli("rollback", "--env", "dev")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[0] == "rolling back dev on node1"
    assert ran.out.splitlines()[-1].startswith(f"rolled back dev to 0.1.0 ({first[:12]}) in ")
    assert host.current(dev) == first
    to = cli("rollback", "--env", "dev", "--to", "0.2.0")
    assert to.code == 0 and "rolled back dev to 0.2.0" in to.out


def test_status_releases_restart_stop_and_logs(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    sha = host.artifact("0.1.0")
    cli.deploy("dev", "0.1.0")
    shown = cli("status", "--env", "dev")
    assert shown.code == 0
    for expected in ("current    0.1.0", "verdict    healthy"):
        assert expected in shown.out
    data = json.loads(cli("status", "--env", "dev", "--format", "json").out)
    assert (data["env"], data["sha"], data["healthy"]) == ("dev", sha, True)
    listed = json.loads(cli("releases", "--env", "dev", "--format", "json").out)
    assert [(r["version"], r["state"]) for r in listed] == [("0.1.0", "current")]

    restarted = cli("restart", "--env", "dev")
    assert restarted.code == 0
    assert f"restarted dev: 0.1.0 ({sha[:12]}) healthy in " in restarted.out
    assert host.system.services[dev.unit].starts == 2

    assert cli("logs", "--env", "dev", "--lines", "5").code == 0
    stopped = cli("stop", "--env", "dev")
    assert (stopped.code, stopped.out.splitlines()[-1]) == (0, "stopped helionyx-dev.service")
    down = cli("status", "--env", "dev", "--format", "json")
    assert down.code == 1 and json.loads(down.out)["healthy"] is False
    assert cli("releases", "--env", "dev").code == 0, "releases reports; it does not judge"
    assert cli("unlock", "--env", "dev").out.strip() == "dev is not locked"


def test_status_of_every_env_is_non_zero_until_all_are_healthy(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    host.artifact("0.1.0")
    cli.deploy("dev", "0.1.0")
    ran = cli("status", "--format", "json")
    rows = {row["env"]: row for row in json.loads(ran.out)}
    assert ran.code == 1
    assert set(rows) == {"dev", "staging", "live"}
    assert rows["dev"]["status"]["healthy"] is True
    assert rows["live"]["status"]["problem"] == "nothing is deployed"
    assert cli("status").code == 1


def test_promote_moves_exactly_what_the_source_serves(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    sha = host.artifact("0.1.0")
    staging = host.peer("staging")
    host.set_up(staging)
    assert cli.deploy("dev", "0.1.0").code == 0
    ran = cli("promote", "--from", "dev", "--to", "staging", "--store", cli.store)
    assert ran.code == 0, ran.err
    assert f"promoted 0.1.0 ({sha[:12]}) to staging in " in ran.out
    assert host.current(staging) == sha


def test_backup_backups_and_restore(cli: Cli, host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.0")
    cli.deploy("dev", "0.1.0")
    host.write_events(dev, ("NoteCaptured", 1), ("NoteCaptured", 1))
    assert cli("backups", "--env", "dev").out.strip() == "no backups of dev"
    taken = cli("backup", "--env", "dev", "--pull", str(host.root.parent / "pulled"))
    assert taken.code == 0, taken.err
    assert "(2 events" in taken.out
    listed = json.loads(cli("backups", "--env", "dev", "--format", "json").out)
    assert [b["event_count"] for b in listed] == [2]
    backup_id = listed[0]["id"]
    pulled = host.root.parent / "pulled" / "dev" / backup_id
    assert pulled.is_dir() and oct(pulled.stat().st_mode & 0o777) == "0o700"
    restored = cli("restore", "--env", "dev", "--from", backup_id)
    assert restored.code == 0, restored.err
    assert f"restored 2 events from dev/{backup_id} into dev, healthy" in restored.out


def test_setup_host_is_idempotent_and_refuses_readable_secrets(cli: Cli, host: PretendHost) -> None:
    host.peer("staging")
    settings = host.workspace / ".env.staging"
    fill_settings(REPO / ".env.staging.example", settings, {"HELIONYX_API_TOKEN": TOKEN})
    first = cli("setup-host", "--env", "staging")
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == "staging is set up on node1"
    again = cli("setup-host", "--env", "staging")
    assert again.out.splitlines() == ["  · nothing to change", "staging is set up on node1"]
    settings.chmod(0o644)
    before = untouched(host)
    refused = cli("setup-host", "--env", "staging")
    assert refused.code == UsageError.exit_code
    assert "readable by others (mode 0644)" in refused.error
    assert untouched(host) == before
    missing = cli("setup-host", "--env", "staging", "--env-file", "/nonexistent/settings")
    assert "no settings file /nonexistent/settings" in missing.error


def test_store_commands_publish_list_and_verify(
    cli: Cli, host: PretendHost, tmp_path: Path
) -> None:
    targets: TargetsRecord = {"pythons": ["3.12", "3.13"], "machines": ["aarch64"], "glibc": "2.34"}
    sha = host.artifact("0.1.0", targets=targets)
    other = tmp_path / "other-store"
    # The local store (dist/releases) is where publish reads from.
    local = host.workspace / "dist" / "releases"
    local.parent.mkdir(parents=True)
    local.symlink_to(host.store.root)
    no_notes = cli("publish", "--version", "0.1.0", "--store", f"dir:{other}")
    assert no_notes.code == 1
    assert "cannot read the release notes of 0.1.0" in no_notes.error
    assert not other.exists()
    (host.workspace / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [0.1.0] - 2026-12-01\n\n- first\n"
    )
    published = cli("publish", "--version", "0.1.0", "--store", f"dir:{other}")
    assert published.code == 0, published.err
    assert published.out.strip() == f"dir:{other}: 0.1.0: published"
    listed = json.loads(cli("list", "--store", f"dir:{other}", "--format", "json").out)
    assert [(r["version"], r["sha"]) for r in listed] == [("0.1.0", sha)]
    assert listed[0]["targets"] == "3.12,3.13 aarch64 glibc 2.34+"
    table = cli("list", "--store", f"dir:{other}").out.splitlines()
    assert table[0].endswith("  HOSTS") and table[1].endswith("  3.12,3.13 aarch64 glibc 2.34+")
    verified = cli("verify", "--version", "0.1.0", "--store", f"dir:{other}")
    assert verified.code == 0 and f"verified 0.1.0 ({sha})" in verified.out
    assert "  hosts: CPython 3.12, 3.13 on aarch64, glibc 2.34+" in verified.out
    assert cli("verify", "--version", "0.3.0", "--store", f"dir:{other}").code == NotFound.exit_code


def test_migrate_and_force_reach_the_library_from_the_command_line(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    v1: DataContract = {"projections": 1, "events": {"NoteCaptured": {"reads": 1, "writes": 1}}}
    v2: DataContract = {"projections": 2, "events": {"NoteCaptured": {"reads": 1, "writes": 1}}}
    host.artifact("1.0.0", contract=v1)
    host.artifact("2.0.0", contract=v2)
    assert cli.deploy("dev", "1.0.0").code == 0
    refused = cli.deploy("dev", "2.0.0")
    assert refused.code == UsageError.exit_code and "deploy with MIGRATE=1" in refused.error
    migrated = cli.deploy("dev", "2.0.0", "--migrate")
    assert migrated.code == 0, migrated.err
    assert "read model: building it from the event log" in migrated.out
    live = host.env("live", requires="dev", soak=3600.0)
    host.set_up(live)
    gated = cli.deploy("live", "2.0.0")
    assert gated.code == UsageError.exit_code and "live takes only what dev verified" in gated.error
    forced = cli.deploy("live", "2.0.0", "--force", "--reason", "hotfix")
    assert forced.code == 0, forced.err
    assert "gate skipped (FORCE=1: hotfix)" in forced.out


def test_a_changed_set_up_needs_apply_units_on_the_command_line(
    cli: Cli, host: PretendHost
) -> None:
    host.artifact("0.1.0")
    exposed = host.env("staging", listen_address="0.0.0.0")
    host.set_up(exposed)
    host.env("staging")  # the checkout says nothing about the address: the default
    for argv in (
        ["deploy", "--env", "staging", "--version", "0.1.0", "--store", cli.store],
        ["restart", "--env", "staging"],
        ["rollback", "--env", "staging"],
    ):
        refused = cli(*argv)
        assert refused.code == UsageError.exit_code, argv
        assert "set up with other settings: listen: 0.0.0.0:8001 -> 127.0.0.1:8001" in refused.error
    applied = cli.deploy("staging", "0.1.0", "--apply-units")
    assert applied.code == 0, applied.err


def test_a_lock_from_another_machine_is_cleared_only_with_force(
    cli: Cli, host: PretendHost, dev: Environment
) -> None:
    lock = Path(dev.base_dir) / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(
        json.dumps(
            {
                "holder": "bob@laptop",
                "host": "some-other-machine",
                "pid": 4242,
                "command": "deploy 0.3.0",
                "started_at": "2026-12-05T09:00:00Z",
                "token": "t",
            }
        )
    )
    refused = cli("unlock", "--env", "dev")
    assert refused.code == UsageError.exit_code
    assert "it ran on another machine" in refused.error and lock.is_dir()
    forced = cli("unlock", "--env", "dev", "--force")
    assert forced.code == 0 and "removed the lock held by bob@laptop" in forced.out
    assert not lock.exists()


def test_a_dev_build_goes_to_dev_only(cli: Cli, host: PretendHost, dev: Environment) -> None:
    host.artifact("0.1.1.dev3", tag=False)
    staging = host.peer("staging")
    host.set_up(staging)
    refused = cli.deploy("staging", "0.1.1.dev3")
    assert refused.code == UsageError.exit_code
    assert "unpublished dev build; staging takes tagged releases only" in refused.error
    assert host.current(staging) is None
    assert cli.deploy("dev", "0.1.1.dev3").code == 0


def test_ctrl_c_is_exit_130_and_says_where_to_look(cli: Cli, host: PretendHost) -> None:
    def interrupted(env: Environment) -> Remote:
        raise KeyboardInterrupt

    cli.capsys.readouterr()
    code = main(
        ["--repo", str(host.workspace), "status", "--env", "dev"],
        remote_factory=interrupted,
        environments=host.peer,
    )
    assert code == 130
    assert cli.capsys.readouterr().err.strip() == (
        "interrupted; make status ENV=dev shows where it stands"
    )


def test_an_unknown_subcommand_or_missing_argument_is_argparses_exit_2(cli: Cli) -> None:
    for argv in (["frobnicate"], ["deploy", "--env", "dev"], ["status", "--format", "xml"]):
        with pytest.raises(SystemExit) as ended:
            cli(*argv)
        assert ended.value.code == 2

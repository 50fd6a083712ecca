import subprocess
import sys
from pathlib import Path

import pytest

from helionyx.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-token-value-that-must-not-leak"


def base(tmp_path: Path) -> dict[str, str]:
    return {
        "EVENT_STORE_PATH": str(tmp_path / "events"),
        "PROJECTIONS_DB_PATH": str(tmp_path / "p.db"),
        "HELIONYX_API_TOKEN": SECRET,
    }


@pytest.mark.parametrize(("env", "port"), [("dev", 8000), ("staging", 8001), ("live", 8002)])
def test_each_tier_loads_its_own_example_file(env: str, port: int) -> None:
    example = REPO / f".env.{env}.example"
    overrides = {"HELIONYX_API_TOKEN": SECRET}
    settings = load_settings(env, env_file=example, environ=overrides)
    assert settings.environment == env
    assert settings.api_port == port
    expected_root = "var/dev" if env == "dev" else f"/var/lib/helionyx/{env}"
    assert str(settings.event_store_path).startswith(expected_root)
    assert env in str(settings.projections_db_path)


def test_the_port_defaults_by_tier_and_the_environment_beats_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.staging"
    env_file.write_text("API_PORT=9999\nLOG_LEVEL=DEBUG\n")
    settings = load_settings(
        "staging", env_file=env_file, environ={**base(tmp_path), "API_PORT": "7000"}
    )
    assert settings.api_port == 7000
    assert settings.log_level == "DEBUG"
    assert (
        load_settings("live", env_file=tmp_path / "none", environ=base(tmp_path)).api_port == 8002
    )


def test_every_missing_key_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings("dev", env_file=tmp_path / "none", environ={})
    message = str(raised.value)
    assert "\n" not in message
    for key in ("EVENT_STORE_PATH", "PROJECTIONS_DB_PATH", "HELIONYX_API_TOKEN"):
        assert key in message


def test_an_unknown_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_settings("prod", environ=base(tmp_path))


def test_an_invalid_secret_is_reported_without_its_value(tmp_path: Path) -> None:
    environ = {**base(tmp_path), "HELIONYX_API_TOKEN": "short-secret"}
    with pytest.raises(ConfigError) as raised:
        load_settings("dev", env_file=tmp_path / "none", environ=environ)
    assert "HELIONYX_API_TOKEN" in str(raised.value)
    assert "short-secret" not in str(raised.value)


def test_secrets_never_appear_in_reprs(tmp_path: Path) -> None:
    settings = load_settings(
        "dev", env_file=tmp_path / "none", environ={**base(tmp_path), "OPENAI_API_KEY": "sk-abc123"}
    )
    assert SECRET not in repr(settings) and "sk-abc123" not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def run_cli(*args: str, environ: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helionyx", *args],
        env={"PATH": "/usr/bin:/bin", **environ},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_up_with_a_missing_key_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    environ = base(tmp_path)
    del environ["HELIONYX_API_TOKEN"]
    result = run_cli("serve", "--env", "staging", environ=environ, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "HELIONYX_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_shows_settings_but_not_secrets(tmp_path: Path) -> None:
    environ = {**base(tmp_path), "TELEGRAM_BOT_TOKEN": "123:telegram-secret"}
    result = run_cli("check-config", "--env", "dev", environ=environ, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "API_PORT=8000" in result.stdout
    assert "HELIONYX_API_TOKEN=(set)" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "telegram-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("chat", ["@mychannel", "12ab", "1.5"])
def test_check_config_refuses_a_chat_id_that_is_not_a_number(tmp_path: Path, chat: str) -> None:
    environ = {
        **base(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123:telegram-secret",
        "TELEGRAM_CHAT_ID": chat,
    }
    result = run_cli("check-config", "--env", "dev", environ=environ, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "TELEGRAM_CHAT_ID" in result.stderr and "numeric id" in result.stderr
    assert "telegram-secret" not in result.stderr


def test_a_negative_group_chat_id_and_an_empty_one_are_accepted(tmp_path: Path) -> None:
    bot = {"TELEGRAM_BOT_TOKEN": "123:telegram-secret"}
    assert load_settings(
        "dev", environ={**base(tmp_path), **bot, "TELEGRAM_CHAT_ID": "-1001234567890"}
    )
    empty = load_settings("dev", environ={**base(tmp_path), "TELEGRAM_CHAT_ID": ""})
    assert empty.telegram_chat_id is None and not empty.telegram_enabled


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"HELIONYX_API_TOKEN": " " * 20},
            "HELIONYX_API_TOKEN (must not contain spaces",
        ),
        (
            {"TELEGRAM_BOT_TOKEN": "", "TELEGRAM_CHAT_ID": "123"},
            "TELEGRAM_CHAT_ID is set but TELEGRAM_BOT_TOKEN is empty",
        ),
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN (must look like"),
        ({"EVENT_STORE_PATH": ""}, "EVENT_STORE_PATH (must be a path, not empty)"),
        ({"EVENT_STORE_PATH": "/etc/hostname"}, "/etc/hostname exists and is not a directory"),
    ],
    ids=["token-of-spaces", "empty-bot-token", "malformed-bot-token", "empty-path", "a-file"],
)
def test_check_config_refuses_settings_that_cannot_work_in_one_line(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    result = run_cli(
        "check-config", "--env", "dev", environ={**base(tmp_path), **overrides}, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr

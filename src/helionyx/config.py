"""One typed, validated settings object, built once at start-up and passed down.

Settings come from the process environment (systemd's `EnvironmentFile=`) and, for local runs,
from `.env.<env>` in the working directory; the process environment wins. The setting names are
those of the original deployment guide so existing `.env` files keep working.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENVIRONMENTS: Final = ("dev", "staging", "live")
DEFAULT_PORTS: Final = {"dev": 8000, "staging": 8001, "live": 8002}

Environment = Literal["dev", "staging", "live"]


class ConfigError(Exception):
    """Settings that cannot start the service; the message is one line for the operator."""


class Settings(BaseSettings):
    """Every setting the service reads. See docs/CONFIG.md for the authoritative list."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", env_file_encoding="utf-8", frozen=True
    )

    environment: Environment
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=0, ge=0, le=65535)
    event_store_path: Path
    #: The read model's file for schema 1; other schemas live beside it (`read_model_path`).
    projections_db_path: Path
    event_store_fsync: bool = True
    backup_root: Path | None = None
    helionyx_api_token: SecretStr = Field(min_length=16)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    max_connections: int = Field(default=4096, ge=16, le=1_000_000)
    request_read_timeout: float = Field(default=10.0, gt=0, le=300)
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    llm_daily_cost_limit_usd: float = Field(default=1.0, ge=0)
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_poll_timeout: int = Field(default=25, ge=0, le=50)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment arrives through `load_settings` as init values, then the file."""
        return (init_settings, dotenv_settings)

    @field_validator("telegram_chat_id")
    @classmethod
    def _numeric_chat(cls, value: str | None) -> str | None:
        # Updates carry the chat's numeric id; an @username can never match one.
        text = (value or "").strip()
        if not text:
            return None
        if not re.fullmatch(r"-?[0-9]{1,20}", text):
            raise ValueError(
                "must be the chat's numeric id, e.g. 123456789 or -1001234567890 "
                "(an @name cannot be served; send the bot a message and read chat.id)"
            )
        return text

    @field_validator("event_store_path", "projections_db_path", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # An empty value would become "." and quietly put the data in the working directory.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a path, not empty")
        return value

    @field_validator("event_store_path")
    @classmethod
    def _a_directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory")
        return value

    @field_validator("helionyx_api_token")
    @classmethod
    def _no_blanks(cls, value: SecretStr) -> SecretStr:
        # A bearer token cannot carry spaces; one of spaces only would never match a header.
        if any(c.isspace() for c in value.get_secret_value()):
            raise ValueError("must not contain spaces or other whitespace")
        return value

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _bot_token(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None  # `TELEGRAM_BOT_TOKEN=` in a settings file: the adapter is off
        if isinstance(text, str) and not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", text.strip()):
            raise ValueError("must look like 123456789:AA… (from @BotFather)")
        return value

    @model_validator(mode="after")
    def _chat_needs_a_token(self) -> Settings:
        if self.telegram_chat_id and self.telegram_bot_token is None:
            raise ValueError(
                "TELEGRAM_CHAT_ID is set but TELEGRAM_BOT_TOKEN is empty: set both to serve "
                "the chat, or neither"
            )
        return self

    @model_validator(mode="after")
    def _default_port(self) -> Settings:
        if self.api_port == 0:
            object.__setattr__(self, "api_port", DEFAULT_PORTS[self.environment])
        return self

    @property
    def telegram_enabled(self) -> bool:
        """The Telegram adapter runs only with both a token and a chat to serve."""
        return self.telegram_bot_token is not None and bool(self.telegram_chat_id)

    def secret_values(self) -> list[str]:
        """The plain values of every secret, for redaction."""
        secrets = (self.helionyx_api_token, self.openai_api_key, self.telegram_bot_token)
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


def env_file_for(env: str, directory: Path | None = None) -> Path:
    """Where a local run looks for its settings: `.env.<env>` in the working directory."""
    return (directory or Path.cwd()) / f".env.{env}"


def load_settings(
    env: str | None,
    *,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings for `env`, or raise ConfigError with one line naming every problem."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("ENV") or "dev"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)}")
    path = env_file if env_file is not None else env_file_for(env)
    known = {name.upper() for name in Settings.model_fields} - {"ENVIRONMENT"}
    values: dict[str, Any] = {k.lower(): v for k, v in environ.items() if k.upper() in known}
    values["environment"] = env
    try:
        return Settings(_env_file=path if path.is_file() else None, **values)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env, path)) from None


def _describe(exc: ValidationError, env: str, path: Path) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "?"
        if error["type"] == "missing":
            missing.append(name)
        else:
            # Only the message, never the input: the input may be a secret.
            msg = str(error["msg"]).removeprefix("Value error, ")
            invalid.append(f"{name} ({msg})" if error["loc"] else msg)
    where = f"{path.name} or the environment"
    parts = []
    if missing:
        parts.append(f"missing required setting(s) {', '.join(missing)}")
    if invalid:
        parts.append(f"invalid setting(s) {', '.join(invalid)}")
    return f"config for env {env!r}: {'; '.join(parts)}; set them in {where} (see docs/CONFIG.md)"

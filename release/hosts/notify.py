"""Notifications: one short Telegram message per deploy, promotion and rollback, for an env
whose TOML says `notify = "telegram:<chat id>"`. The bot token comes from the operator's
environment (HELIONYX_NOTIFY_BOT_TOKEN), never from the repository. The message goes through
the service's own Bot API client (`helionyx.telegram.botapi`); a failed notification never
fails the operation: it is one warning line."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from release.hosts.environments import Environment
from release.hosts.lock import operator

TOKEN_VARIABLE = "HELIONYX_NOTIFY_BOT_TOKEN"  # noqa: S105 - a variable name, not a token
#: Where the Bot API is (tests point it at a local stand-in).
API_VARIABLE = "TELEGRAM_API_URL"
DEFAULT_API = "https://api.telegram.org"


def chat_of(env: Environment) -> int | None:
    """The chat an env notifies, if it notifies one."""
    if not env.notify:
        return None
    kind, _, chat = env.notify.partition(":")
    if kind != "telegram" or not chat.lstrip("-").isdigit():
        return None
    return int(chat)


def message(env: Environment, what: str, release: str, outcome: str, seconds: float) -> str:
    """`helionyx live: deploy of 0.2.0 (abcdef123456) succeeded, by ops@laptop, 1.6 s`."""
    return f"helionyx {env.name}: {what} {release} {outcome}, by {operator()}, {seconds:.1f} s"


def tell(
    env: Environment,
    what: str,
    release: str,
    outcome: str,
    *,
    started: float,
    warn: Callable[[str], None],
) -> None:
    """The message for an operation that ended now, to the env's chat (if it has one)."""
    if env.notify:
        announce(env, message(env, what, release, outcome, time.monotonic() - started), warn)


def announce(env: Environment, text: str, warn: Callable[[str], None]) -> None:
    """Send `text` to the env's chat, if it has one; warn in one line if that fails."""
    chat = chat_of(env)
    if chat is None:
        if env.notify:
            warn(f"notify = {env.notify!r} is not telegram:<chat id>; nothing sent")
        return
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not token:
        warn(f"{env.name} notifies chat {chat}, but {TOKEN_VARIABLE} is not set; nothing sent")
        return
    # Imported only to notify: every other deploy starts without httpx and the service's client.
    import httpx  # noqa: PLC0415

    from helionyx.telegram.botapi import BotApiError  # noqa: PLC0415

    try:
        asyncio.run(_send(os.environ.get(API_VARIABLE, DEFAULT_API), token, chat, text))
    except BotApiError as exc:
        warn(f"the notification to chat {chat} failed ({exc.code} {exc.description})")
    except httpx.HTTPError as exc:
        warn(f"the notification to chat {chat} failed ({type(exc).__name__})")


async def _send(base_url: str, token: str, chat: int, text: str) -> None:
    import httpx  # noqa: PLC0415

    from helionyx.telegram.botapi import BotApi, split_message  # noqa: PLC0415

    async with httpx.AsyncClient() as client:
        api = BotApi(base_url, token, client)
        for part in split_message(text):
            await api.send_message(chat, part)

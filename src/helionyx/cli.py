"""`helionyx` / `python -m helionyx`: serve, check-config, rebuild-projections, events, version."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from helionyx import __commit__, __version__, logs
from helionyx.config import ENVIRONMENTS, ConfigError, Settings, load_settings
from helionyx.domain.errors import DomainError, StoreUnavailable
from helionyx.domain.projections import exclusive, read_model_path, rebuild
from helionyx.domain.store import EventStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helionyx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_env(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--env", choices=ENVIRONMENTS, default=None, help="tier (default: $ENV or dev)"
        )
        return command

    with_env("serve", "run the HTTP API (and the Telegram adapter when configured)")
    with_env("check-config", "validate the settings for an env and print them without secrets")
    with_env("rebuild-projections", "rebuild the SQLite projections from the event log")
    events = with_env("events", "show recent events")
    events.add_argument("-n", "--limit", type=_positive, default=20, help="how many (default 20)")
    events.add_argument("--type", dest="event_type", help="only this event type")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    sub.add_parser("version", help="print version and commit")
    return parser


def _positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the one place that turns errors into a message and an exit code."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"helionyx {__version__} ({__commit__})")
        return 0
    try:
        settings = load_settings(args.env)
        logs.configure(settings.log_level, settings.secret_values())
        return _run(args, settings)
    except (ConfigError, DomainError) as exc:
        print(f"helionyx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        # Imported here so check-config (the deploy's smoke check) does not load the web stack.
        from helionyx.server import serve  # noqa: PLC0415

        return serve(settings)
    if args.command == "check-config":
        return _check_config(settings)
    if args.command == "rebuild-projections":
        # Refused while the service runs: it would go on writing to the file this replaces.
        read_model = read_model_path(settings.projections_db_path)
        with exclusive(read_model):
            store = EventStore(settings.event_store_path)
            store.open()
            count = rebuild(read_model, store)
        print(f"rebuilt {read_model} from {count} events")
        return 0
    return _show_events(args, settings)


def _check_config(settings: Settings) -> int:
    shown = settings.model_dump(mode="json")
    for key, value in shown.items():
        # SecretStr dumps as '**********'; say only whether a secret is set.
        if isinstance(getattr(settings, key), SecretStr):
            text = "(set)"
        else:
            text = "(not set)" if value is None else str(value)
        print(f"{key.upper()}={text}")
    print(f"config for env {settings.environment!r} is valid")
    return 0


def _show_events(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.event_store_path.is_dir():
        # Reading never creates the store: a wrong --env or path must not leave a directory.
        raise StoreUnavailable(
            f"no event store at {settings.event_store_path}; check --env and EVENT_STORE_PATH"
        )
    # Only the end of the log is read; a torn tail is left for the service to quarantine.
    for event in EventStore(settings.event_store_path).tail(args.limit, args.event_type):
        if args.json:
            print(json.dumps(event.to_dict(), ensure_ascii=False))
        else:
            summary = event.payload.get("text", event.payload.get("todo_event_id", ""))
            when = event.to_dict()["occurred_at"]
            print(f"{when}  {event.event_type:<16} {event.event_id}  {summary}")
    return 0

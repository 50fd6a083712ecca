"""Opening the service's durable state: the event store and its projections."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

from helionyx import __commit__
from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import ProjectionsUnavailable
from helionyx.domain.idempotency import IdempotencyIndex
from helionyx.domain.projections import (
    FORCED_READ,
    Projections,
    discard,
    exclusive,
    forced_read_model_path,
    read_model_path,
)
from helionyx.domain.store import EventStore

log = logging.getLogger("helionyx.startup")


@dataclass
class Runtime:
    """The opened state the API serves from."""

    store: EventStore
    projections: Projections
    assistant: Assistant
    held: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        """Release the projections database."""
        self.projections.close()
        self.held.close()


def forced_reason(settings: Settings) -> str | None:
    """The operator's reason, when a forced rollback let this release serve a log it cannot
    wholly read (docs/DEPLOYMENT.md, "Releases that change data")."""
    record = settings.projections_db_path.parent / FORCED_READ
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("commit") != __commit__:
        return None  # left for another release: this one reads the log whole, or refuses
    return str(data.get("reason") or "no reason given")


def open_runtime(settings: Settings) -> Runtime:
    """Open storage, then projections (refusing a foreign schema), and catch them up."""
    keys = IdempotencyIndex()
    forced = forced_reason(settings)
    store = EventStore(
        settings.event_store_path,
        fsync=settings.event_store_fsync,
        observer=keys.note,
        skip_unreadable=forced is not None,
    )
    quarantined = store.open()
    log.info(
        "storage: %d events in %s%s",
        store.count,
        settings.event_store_path,
        f", {len(quarantined)} torn tail(s) quarantined" if quarantined else "",
    )
    held = ExitStack()
    # Held for the whole run: `helionyx rebuild-projections` must not swap the file under us.
    read_model = read_model_path(settings.projections_db_path)
    if forced is not None:
        read_model = forced_read_model_path(settings.projections_db_path)
    held.enter_context(exclusive(read_model))
    if forced is not None:
        # Built afresh at every start: it reflects exactly the log less what is skipped now.
        discard(read_model)
        log.warning(
            "storage: rolled back by force (%s): skipping %s; read model kept apart in %s",
            forced,
            ", ".join(f"{n} {kind}" for kind, n in store.unreadable.items()) or "nothing",
            read_model,
        )
    projections = Projections(read_model)
    try:
        projections.open()
    except BaseException:
        held.close()
        raise
    assistant = Assistant(store, projections, keys=keys)
    before = projections.applied
    try:
        # A database ahead of the log needs a rebuild by hand: refuse to start, with advice.
        projections.catch_up(store)
        lag = None
    except ProjectionsUnavailable:
        lag = assistant.sync()
    except BaseException:
        projections.close()
        held.close()
        raise
    if lag is None:
        log.info(
            "projections: %s current at %d events (%d applied now)",
            read_model,
            projections.applied,
            projections.applied - before,
        )
    else:
        log.warning("projections: behind the log at start-up (%s); serving not ready", lag)
    return Runtime(store, projections, assistant, held)

"""Opening the service's durable state: the event store and its projections."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import ProjectionsUnavailable
from helionyx.domain.idempotency import IdempotencyIndex
from helionyx.domain.projections import Projections, exclusive, read_model_path
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


def open_runtime(settings: Settings) -> Runtime:
    """Open storage, then projections (refusing a foreign schema), and catch them up."""
    keys = IdempotencyIndex()
    store = EventStore(
        settings.event_store_path, fsync=settings.event_store_fsync, observer=keys.note
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
    held.enter_context(exclusive(read_model))
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

"""Opening the service's durable state: the event store and its projections."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.projections import Projections
from helionyx.domain.store import EventStore

log = logging.getLogger("helionyx.startup")


@dataclass
class Runtime:
    """The opened state the API serves from."""

    store: EventStore
    projections: Projections
    assistant: Assistant

    def close(self) -> None:
        """Release the projections database."""
        self.projections.close()


def open_runtime(settings: Settings) -> Runtime:
    """Open storage, then projections (refusing a foreign schema), and catch them up."""
    store = EventStore(settings.event_store_path)
    quarantined = store.open()
    log.info(
        "storage: %d events in %s%s",
        store.count,
        settings.event_store_path,
        f", {len(quarantined)} torn tail(s) quarantined" if quarantined else "",
    )
    projections = Projections(settings.projections_db_path)
    projections.open()
    caught_up = projections.catch_up(store)
    log.info(
        "projections: %s current at %d events (%d applied now)",
        settings.projections_db_path,
        projections.applied,
        caught_up,
    )
    return Runtime(store, projections, Assistant(store, projections))

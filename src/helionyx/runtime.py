"""Opening the service's durable state: the event store and its projections."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from helionyx import __commit__, successor
from helionyx.config import Settings
from helionyx.domain.assistant import Assistant
from helionyx.domain.errors import ProjectionsInUse, ProjectionsUnavailable
from helionyx.domain.idempotency import IdempotencyIndex
from helionyx.domain.projections import (
    FORCED_READ,
    Projections,
    discard,
    exclusive,
    forced_read_model_path,
    read_model_path,
)
from helionyx.domain.store import EventStore, writer

log = logging.getLogger("helionyx.startup")


@dataclass
class Runtime:
    """The opened state the API serves from."""

    store: EventStore
    projections: Projections
    assistant: Assistant
    held: ExitStack = field(default_factory=ExitStack)
    read_model: Path | None = None
    #: False while another process (the release handing over to this one) writes the read model.
    projections_open: bool = True

    def take_over(self) -> int:
        """Become the writer once the running release lets go of the log: take in the events
        it wrote last and catch the read model up; how many events that was."""
        self.held.enter_context(writer(self.store.directory, wait=True))
        if not self.projections_open and self.read_model is not None:
            self.held.enter_context(exclusive(self.read_model, wait=True))
            self.projections.open()
            self.projections_open = True
        taken = self.store.refresh()
        lag = self.assistant.sync()
        if lag is not None:
            log.warning("projections: behind the log after the hand-over (%s)", lag)
        return taken

    def close(self) -> None:
        """Release the projections database and the log (safe to call twice)."""
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


def open_runtime(settings: Settings, *, beside: bool = False) -> Runtime:
    """Open storage, then projections (refusing a foreign schema), and catch them up.

    `beside`: the running release still writes (a hand-over, `helionyx.handover`): read the
    log, build a read model of our own, touch nothing it holds; `Runtime.take_over` follows.
    """
    keys = IdempotencyIndex()
    forced = forced_reason(settings)
    store = EventStore(
        settings.event_store_path,
        fsync=settings.event_store_fsync,
        observer=keys.note,
        skip_unreadable=forced is not None,
    )
    held = ExitStack()
    try:
        if not beside:
            held.enter_context(writer(settings.event_store_path))
        return _open(settings, store, keys, held, forced, beside=beside)
    except BaseException:
        held.close()
        raise


def _open(
    settings: Settings,
    store: EventStore,
    keys: IdempotencyIndex,
    held: ExitStack,
    forced: str | None,
    *,
    beside: bool,
) -> Runtime:
    if beside:
        # The release beside us serves meanwhile: its clients get the CPU first.
        successor.yielding(store.opening(), successor.budget())
        quarantined = store.quarantined
    else:
        quarantined = store.open()
    log.info(
        "storage: %d events in %s%s",
        store.count,
        settings.event_store_path,
        f", {len(quarantined)} torn tail(s) quarantined" if quarantined else "",
    )
    # Held for the whole run: `helionyx rebuild-projections` must not swap the file under us.
    read_model = read_model_path(settings.projections_db_path)
    if forced is not None:
        read_model = forced_read_model_path(settings.projections_db_path)
    try:
        held.enter_context(exclusive(read_model))
        mine = True
    except ProjectionsInUse:
        if not beside:
            raise
        mine = False  # the running release's: it keeps it current until it hands over
    projections = Projections(read_model)
    assistant = Assistant(store, projections, keys=keys)
    if not mine:
        log.info("projections: %s is the running release's until it hands over", read_model)
        return Runtime(store, projections, assistant, held, read_model, projections_open=False)
    if forced is not None:
        # Built afresh at every start: it reflects exactly the log less what is skipped now.
        discard(read_model)
        log.warning(
            "storage: rolled back by force (%s): skipping %s; read model kept apart in %s",
            forced,
            ", ".join(f"{n} {kind}" for kind, n in store.unreadable.items()) or "nothing",
            read_model,
        )
    projections.open()
    before = projections.applied
    try:
        # A database ahead of the log needs a rebuild by hand: refuse to start, with advice.
        projections.catch_up(store)
        lag = None
    except ProjectionsUnavailable:
        lag = assistant.sync()
    except BaseException:
        projections.close()
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
    return Runtime(store, projections, assistant, held, read_model)

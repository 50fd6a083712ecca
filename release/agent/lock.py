"""The environment lock on the host: a directory renamed into place whole, holding its holder."""

from __future__ import annotations

import json
import os
import shutil
import time

from . import state as state_command
from .files import fsync_dir
from .layout import Context
from .protocol import HOLDER_FILE, LockAnswer, LockRequest, UnlockAnswer, UnlockRequest


def lock(ctx: Context, req: LockRequest) -> LockAnswer:
    """Take the env lock with an atomic rename, or say who holds it."""
    layout = ctx.layout
    if not layout.base.is_dir():
        return {"acquired": False, "not_set_up": True, "holder": None}
    replace = req.get("replace_token")
    if replace is not None:
        current = layout.holder()
        if current is not None and current.get("token") == replace:
            shutil.rmtree(layout.lock, ignore_errors=True)
    if layout.lock.exists():
        # Refused without touching anything: a held lock leaves the host exactly as it was.
        return {"acquired": False, "holder": layout.holder()}
    holder = req["holder"]
    # Built whole under a private name, then renamed into place: whoever sees the lock also
    # sees its holder (a mkdir first left a moment when a rival read an empty lock).
    staged = layout.base / f"{layout.lock.name}.{os.getpid()}.{time.monotonic_ns()}"
    staged.mkdir()
    (staged / HOLDER_FILE).write_text(json.dumps(holder))
    try:
        # rename(2) onto a directory that is not empty fails: a rival won in between.
        staged.rename(layout.lock)
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
        return {"acquired": False, "holder": layout.holder()}
    fsync_dir(layout.base)
    # The state under the lock comes back in the same round trip.
    return {"acquired": True, "holder": holder, "state": state_command.state(ctx, {"probe": True})}


def unlock(ctx: Context, req: UnlockRequest) -> UnlockAnswer:
    """Release the lock if `token` still holds it (or unconditionally with force)."""
    layout = ctx.layout
    holder = layout.holder()
    if holder is None:
        return {"released": False}
    if req.get("force") or holder.get("token") == req.get("token"):
        shutil.rmtree(layout.lock, ignore_errors=True)
        return {"released": True, "holder": holder}
    return {"released": False, "holder": holder}

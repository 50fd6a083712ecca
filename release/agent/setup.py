"""`setup`: first-time, idempotent preparation of one environment on the host."""

from __future__ import annotations

import os
from pathlib import Path

from . import recovery
from .layout import Context
from .protocol import SERVICE_USER, SetupAnswer, SetupRequest
from .units import ensure_socket, refresh, systemctl_checked


def setup(ctx: Context, req: SetupRequest) -> SetupAnswer:
    """Create the service user, directories, config file (0600 root), units; enable them."""
    layout, system = ctx.layout, ctx.system
    done = []
    if system.service_user() is None:
        system.add_service_user()
        done.append(f"created system user {SERVICE_USER}")
    layout.releases.mkdir(parents=True, exist_ok=True)
    for path in (layout.base.parent, layout.base, layout.releases):
        path.chmod(0o755)
    for path in (layout.data_dir, layout.data_dir / "events", layout.data_dir / "projections"):
        path.mkdir(parents=True, exist_ok=True)
        system.chown(path)
        path.chmod(0o750)
    config = layout.config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.parent.chmod(0o755)
    upload = Path(req["config_upload"])
    if not config.exists() or config.read_bytes() != upload.read_bytes():
        upload.chmod(0o600)
        system.chown(upload, to_root=True)
        with upload.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(upload, config)
        done.append(f"wrote {config}")
    else:
        upload.unlink()
    config.chmod(0o600)
    done += refresh(ctx, req["units"], req.get("settings"))
    done += recovery.install(ctx.layout)
    systemctl_checked(
        system, "enable", "--quiet", f"{layout.unit}.socket", f"{layout.unit}.service"
    )
    if layout.link_target(layout.current):
        done += ensure_socket(ctx)
    return {"done": done}

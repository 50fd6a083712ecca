"""UTC timestamps: the one form every record of the pipeline uses, on both sides."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_timestamp(timespec: str = "milliseconds") -> str:
    """UTC now, ISO 8601 with Z."""
    return datetime.now(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def compact_utc() -> str:
    """UTC now as `YYYYMMDDTHHMMSSZ`, for names (backups, data set aside)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

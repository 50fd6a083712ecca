"""Small release assets (manifest.json) kept on disk by asset id and GitHub's digest.

An asset's bytes never change under its id, and GitHub reports each asset's SHA-256 as
`digest`; an entry is used only when its bytes still hash to that digest, so a damaged or
planted file is never believed. An asset without a digest is never cached: nothing could check it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any


class AssetCache:
    """Bytes of assets by (id, sha256) under one directory; `None` keeps them in memory only."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: dict[int, bytes] = {}

    def get(self, asset: dict[str, Any]) -> bytes | None:
        """The asset's bytes if held and still matching GitHub's digest."""
        asset_id = int(asset["id"])
        if asset_id in self._memory:
            return self._memory[asset_id]
        path = self._path(asset)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != _digest(asset):
            path.unlink(missing_ok=True)
            return None
        self._memory[asset_id] = data
        return data

    def put(self, asset: dict[str, Any], data: bytes) -> None:
        """Keep bytes just downloaded; on disk only when they match GitHub's digest."""
        self._memory[int(asset["id"])] = data
        path = self._path(asset)
        if path is None or hashlib.sha256(data).hexdigest() != _digest(asset):
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".asset-", dir=path.parent)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except OSError:
            return  # a cache that cannot be written only costs a download next time

    def _path(self, asset: dict[str, Any]) -> Path | None:
        digest = _digest(asset)
        if self.directory is None or not digest:
            return None
        return self.directory / f"{int(asset['id'])}-{digest}"


def _digest(asset: dict[str, Any]) -> str:
    """The hex SHA-256 GitHub reports for an asset, or "" when it reports none."""
    digest = str(asset.get("digest") or "")
    hexpart = digest[7:] if digest.startswith("sha256:") else ""
    return hexpart if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart) else ""

"""GitHub Releases as a release store (the HTTP rules live in `release.artifacts.github_client`).

Endpoints used (docs.github.com/rest/releases/releases and /rest/releases/assets):
- GET  /repos/{owner}/{repo}/releases?per_page=100 (paginated by the Link header)
- GET  /repos/{owner}/{repo}/releases/tags/{tag}
- POST /repos/{owner}/{repo}/releases
- GET  /repos/{owner}/{repo}/releases/{release_id}/assets?per_page=100 (paginated; the only
  listing that shows an asset whose upload never finished, `"state": "starter"`)
- DELETE /repos/{owner}/{repo}/releases/assets/{asset_id} (such a leftover, before uploading again)
- POST {upload_url}?name=… on the uploads host, raw bytes
- GET  /repos/{owner}/{repo}/releases/assets/{asset_id} with Accept: application/octet-stream,
  answered by a 302 to the storage host

A release's commit is the one its own `manifest.json` names. `target_commitish` is only read to
recognise a release our own create made; for a release created from a branch it is the branch
name, and for an existing tag GitHub ignores it altogether.

One version costs a few requests whatever the history: it is looked up by its tag first
(`v1.2.3`, then `1.2.3`); only a SHA, or a version whose tag is named otherwise, reads the
list, whose manifests come from a cache checked against GitHub's digest of each asset.
A release whose `manifest.json` this tool did not write is skipped by the list and named,
in one line, by whatever asks for it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from release.agent.checksums import sha256_file
from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import Artifact, Manifest
from release.artifacts.github_answers import json_list, json_object
from release.artifacts.github_cache import AssetCache
from release.artifacts.github_client import GitHubClient
from release.artifacts.store import Outcome, ReleaseInfo, newest_built_first, replace_dir, resolve
from release.clock import Clock
from release.errors import (
    AlreadyPublished,
    ArtifactError,
    Conflict,
    ForeignRelease,
    NotFound,
    StoreError,
    UsageError,
)
from release.progress import Progressable

API_URL = "https://api.github.com"
UPLOADED = "uploaded"


@dataclass(frozen=True)
class _Listed:
    """A release as the list shows it, with what its manifest says when it has one."""

    info: ReleaseInfo
    release: dict[str, Any]


class GitHubStore:
    """Releases of one repository."""

    def __init__(
        self,
        owner: str,
        repo: str,
        token: str | None,
        *,
        api_url: str = API_URL,
        client: httpx.Client | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
        clock: Clock | None = None,
        notify: Callable[[str], None] = lambda _: None,
        cache: Path | None = None,
    ) -> None:
        self.owner, self.repo = owner, repo
        self.label = f"github:{owner}/{repo}"
        self.api = api_url.rstrip("/")
        self._repo_url = f"{self.api}/repos/{owner}/{repo}"
        self._notify = notify
        self._moved_told = False
        self._assets_cache = AssetCache(cache)
        self._located: dict[str, _Listed] = {}
        self.http = GitHubClient(
            token,
            client=client,
            attempts=attempts,
            backoff=backoff,
            clock=clock,
            notify=notify,
            on_moved=self._moved,
        )

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        token: str | None,
        api_url: str | None,
        notify: Callable[[str], None] = lambda _: None,
        cache: Path | None = None,
    ) -> GitHubStore:
        """`OWNER/REPO`, the token from GITHUB_TOKEN unless given (reading needs none)."""
        owner, sep, repo = spec.partition("/")
        if not sep or not owner or not repo or "/" in repo:
            raise UsageError(f"github store {spec!r} is not OWNER/REPO")
        token = token if token is not None else os.environ.get("GITHUB_TOKEN", "")
        api = api_url or os.environ.get("GITHUB_API_URL", API_URL)
        return cls(owner, repo, token or None, api_url=api, notify=notify, cache=cache)

    # -- the store interface -----------------------------------------------------------
    def releases(self) -> list[ReleaseInfo]:
        """Every published release (drafts are not), newest first."""
        return newest_built_first([listed.info for listed in self._listing()])

    def find(self, ref: str) -> ReleaseInfo:
        """The release `ref` names (version, tag or SHA prefix)."""
        return self._locate(ref).info

    def publish(self, artifact: Artifact, notes: str, progress: Progressable) -> Outcome:
        """Create the release for the tag, or complete it; SHA256SUMS goes last."""
        manifest = artifact.manifest
        if manifest.tag is None:
            raise UsageError(
                f"{manifest.version} is a dev build",
                hint="only tagged releases are published; run make release first",
            )
        if self.http.anonymous:
            raise UsageError(
                "GITHUB_TOKEN is not set; publishing needs a token",
                hint="export a token with contents: write (never put it in a file in the repo)",
            )
        release = self._release_for_tag(manifest.tag)
        created = release is None
        if release is None:
            release, created = self._create_release(manifest, notes)
        assets = self._assets(release)
        uploaded = {a["name"]: a for a in assets if a.get("state") == UPLOADED}
        self._refuse_other_bytes(artifact, release, uploaded)
        wanted = {name for _, name in _asset_names(manifest)} | {SUMS}
        # An earlier publish of ours left its commit on the release, or some of its files.
        ours_before = release.get("target_commitish") == manifest.commit or any(
            a.get("name") in wanted for a in assets
        )
        for leftover in (a for a in assets if a.get("state") != UPLOADED):
            if leftover["name"] in wanted:
                # An upload that never finished holds its name (422) until it is deleted.
                self.http.request("DELETE", str(leftover["url"]))
        uploads = [(p, name) for p, name in _asset_names(manifest) if name not in uploaded]
        if SUMS not in uploaded:
            uploads.append((SUMS, SUMS))
        for path, name in uploads:
            self._upload(release, artifact.directory / path, name, progress)
        if created:
            return Outcome.CREATED
        if not uploads:
            return Outcome.UNCHANGED
        return Outcome.COMPLETED if ours_before else Outcome.ADDED

    def fetch(self, version: str, destination: Path, progress: Progressable) -> Path:
        """Download every asset of a release into `destination/<version>`."""
        release = self._locate(version).release
        tag = str(release["tag_name"])
        assets = {a["name"]: a for a in self._assets(release) if a.get("state") == UPLOADED}
        for required in (MANIFEST, SUMS):
            if required not in assets:
                raise StoreError(
                    f"release {tag} in {self.label} has no {required}",
                    hint="it was not published by this tool or its publish was interrupted; "
                    "make publish completes it",
                )
        manifest_bytes = self._manifest_bytes(assets[MANIFEST])
        manifest = self._manifest(release, manifest_bytes)
        target = destination / manifest.version

        def fill(staging: Path) -> None:
            (staging / MANIFEST).write_bytes(manifest_bytes)
            self._download(assets[SUMS], staging / SUMS, None)
            for path, name in _asset_names(manifest):
                if path == MANIFEST:
                    continue
                if name not in assets:
                    raise StoreError(f"release {tag} in {self.label} lacks the asset {name}")
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                self._download(assets[name], staging / path, progress)

        replace_dir(target, fill)
        return target

    # -- releases and their manifests ------------------------------------------------------
    def _locate(self, ref: str) -> _Listed:
        """A release by its tag when the ref can name one, else from the list."""
        if ref in self._located:
            return self._located[ref]
        if not ref.strip():
            resolve([], ref)  # refuses an empty ref before any request
        found = None
        for tag in _tags_for(ref):
            release = self._release_for_tag(tag)
            if release is None or release.get("draft"):
                continue
            listed = _Listed(self._info(release), release)
            try:
                resolve([listed.info], ref)
            except NotFound:
                continue  # a tag of that name holding another version
            found = listed
            break
        if found is None:
            listing = self._listing()
            info = resolve([listed.info for listed in listing], ref)
            found = next(listed for listed in listing if listed.info is info)
        self._located[ref] = self._located[found.info.version] = found
        return found

    def _listing(self) -> list[_Listed]:
        found, foreign = [], []
        for release in self._paginate(f"{self._repo_url}/releases"):
            if release.get("draft"):
                continue  # a draft has no tag yet and cannot be fetched by one
            try:
                found.append(_Listed(self._info(release), release))
            except ForeignRelease:
                foreign.append(str(release.get("tag_name")))
        if foreign:
            self._notify(
                f"{self.label}: skipped {len(foreign)} release(s) whose manifest.json this tool "
                f"did not write: {', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}"
            )
        return found

    def _info(self, release: dict[str, Any]) -> ReleaseInfo:
        tag = str(release["tag_name"])
        embedded = release.get("assets") or []
        manifest_asset = next(
            (a for a in embedded if a.get("name") == MANIFEST and a.get("state") == UPLOADED),
            None,
        )
        size = sum(int(a.get("size", 0)) for a in embedded)
        if manifest_asset is not None:
            manifest = self._manifest(release, self._manifest_bytes(manifest_asset))
            return replace(ReleaseInfo.of(manifest, size), tag=tag)
        # Made outside this tool (web UI, gh): the commit is unknown, never a branch name.
        published = str(release.get("published_at") or release.get("created_at") or "")
        return ReleaseInfo(_version_of_tag(tag), tag, "", published, size)

    def _manifest(self, release: dict[str, Any], data: bytes) -> Manifest:
        """A release's manifest, or ForeignRelease naming the release and the store."""
        try:
            return Manifest.from_json(data)
        except ArtifactError as exc:
            tag = release.get("tag_name")
            raise ForeignRelease(
                f"release {tag} in {self.label} was not made by this tool: {exc.message}",
                hint="pick another version (make releases-available lists them) or remove "
                "that release's manifest.json asset",
            ) from None

    def _manifest_bytes(self, asset: dict[str, Any]) -> bytes:
        """A manifest's bytes: from the cache when GitHub's digest still vouches for them."""
        data = self._assets_cache.get(asset)
        if data is None:
            data = self._asset_bytes(asset)
            self._assets_cache.put(asset, data)
        return data

    def _refuse_other_bytes(
        self, artifact: Artifact, release: dict[str, Any], uploaded: dict[str, dict[str, Any]]
    ) -> None:
        """Releases are immutable: what the release already holds must be this artifact's."""
        manifest = artifact.manifest

        def refuse(detail: str) -> AlreadyPublished:
            return AlreadyPublished(
                f"{self.label} already holds {manifest.tag} {detail}",
                hint="releases are immutable; publish a new version",
                release=manifest.version,
            )

        if MANIFEST in uploaded:
            theirs = self._manifest(release, self._manifest_bytes(uploaded[MANIFEST]))
            if theirs.commit != manifest.commit:
                raise refuse(f"built from commit {theirs.commit[:12]}, not {manifest.commit[:12]}")
        if (
            SUMS in uploaded
            and self._asset_bytes(uploaded[SUMS]) != (artifact.directory / SUMS).read_bytes()
        ):
            raise refuse("with different bytes")
        entries = {name: path for path, name in _asset_names(manifest)}
        for name, asset in uploaded.items():
            if name not in entries:
                continue  # someone else's file on the release; not ours to judge
            ours = artifact.directory / entries[name]
            digest = str(asset.get("digest") or "")
            if int(asset.get("size", -1)) != ours.stat().st_size or (
                digest.startswith("sha256:") and digest[7:] != sha256_file(ours)
            ):
                raise refuse(f"with a different {name}")

    # -- REST calls --------------------------------------------------------------------
    def _moved(self, old: httpx.URL, new: httpx.URL) -> None:
        """A 301 for the repository: use the new address from now on, and say so once."""
        old_text, new_text = str(old.copy_with(query=None)), str(new.copy_with(query=None))
        if not old_text.startswith(self._repo_url):
            return
        rest = old_text[len(self._repo_url) :]
        if rest and new_text.endswith(rest):
            self._repo_url = new_text[: -len(rest)]
        if not self._moved_told:
            self._moved_told = True
            self._notify(
                f"{self.label} has moved (GitHub answers 301 Moved Permanently); following it. "
                "Update STORE to the repository's new name."
            )

    def _release_for_tag(self, tag: str) -> dict[str, Any] | None:
        url = f"{self._repo_url}/releases/tags/{quote(tag, safe='/')}"
        try:
            return json_object(self.http.request("GET", url))
        except NotFound:
            return None

    def _create_release(self, manifest: Manifest, notes: str) -> tuple[dict[str, Any], bool]:
        """The new release, and whether our request made it."""
        body = {
            "tag_name": manifest.tag,
            "target_commitish": manifest.commit,
            "name": manifest.tag,
            "body": notes,
            "draft": False,
            "prerelease": False,
        }
        try:
            return json_object(
                self.http.request("POST", f"{self._repo_url}/releases", json=body)
            ), True
        except Conflict:
            # A retry of our create whose first try GitHub carried out (its answer was lost,
            # a 502) finds the tag taken: by our release if it is as we asked for it.
            assert manifest.tag is not None
            release = self._release_for_tag(manifest.tag)
            if release is None:
                raise
            ours = all(release.get(key) == body[key] for key in ("target_commitish", "body"))
            return release, ours and not release.get("assets")

    def _assets(self, release: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._paginate(f"{self._repo_url}/releases/{release['id']}/assets"))

    def _upload(
        self, release: dict[str, Any], path: Path, name: str, progress: Progressable
    ) -> None:
        # upload_url is a URI template: "https://uploads.github.com/…/assets{?name,label}".
        url = re.sub(r"\{[^}]*\}$", "", str(release["upload_url"]))
        size = path.stat().st_size
        progress.start(f"uploading {name}", size)
        try:
            try:
                self._post_asset(url, path, name)
            except Conflict:
                # A retried upload whose first try died after GitHub created the asset: it
                # is left in state "starter" and holds the name. Remove it, then upload again.
                if not self._drop_unfinished(release, name):
                    raise
                self._post_asset(url, path, name)
            progress.advance(size)
        finally:
            progress.finish()

    def _post_asset(self, url: str, path: Path, name: str) -> None:
        self.http.request(
            "POST",
            url,
            params={"name": name},
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )

    def _drop_unfinished(self, release: dict[str, Any], name: str) -> bool:
        """Delete unfinished uploads of `name`; whether there was one."""
        leftovers = [
            a for a in self._assets(release) if a["name"] == name and a.get("state") != UPLOADED
        ]
        for leftover in leftovers:
            self.http.request("DELETE", str(leftover["url"]))
        return bool(leftovers)

    def _asset_bytes(self, asset: dict[str, Any]) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "asset"
            self._download(asset, target, None)
            return target.read_bytes()

    def _download(self, asset: dict[str, Any], target: Path, progress: Progressable | None) -> None:
        url = str(asset.get("url") or f"{self._repo_url}/releases/assets/{asset['id']}")
        self.http.download(url, target, progress, str(asset["name"]), int(asset.get("size", 0)))

    def _paginate(self, url: str) -> Iterator[dict[str, Any]]:
        next_url: str | None = url
        params: dict[str, Any] | None = {"per_page": 100}
        while next_url:
            response = self.http.request("GET", next_url, params=params)
            yield from json_list(response)
            next_url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own query


def _tags_for(ref: str) -> list[str]:
    """The tags a ref may be, in the order this tool names them; none for a SHA."""
    if len(ref) >= 7 and all(c in "0123456789abcdef" for c in ref):
        return []
    bare = _version_of_tag(ref)
    if not bare[:1].isdigit():
        return [ref] if ref.strip() else []
    return [f"v{bare}", bare]


def _version_of_tag(tag: str) -> str:
    return tag[1:] if tag.startswith("v") and tag[1:2].isdigit() else tag


def _asset_names(manifest: Manifest) -> list[tuple[str, str]]:
    """(path in the artifact, flat asset name) for every file; GitHub assets have no folders."""
    pairs = [(f.path, f.path.rsplit("/", 1)[-1]) for f in manifest.files]
    pairs.append((MANIFEST, MANIFEST))
    names = [name for _, name in pairs]
    if len(set(names)) != len(names):
        raise StoreError("two artifact files share a name; they cannot become GitHub assets")
    return pairs

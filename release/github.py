"""GitHub Releases as a release store, through GitHub's REST API with httpx.

Endpoints used (API version 2022-11-28):
- GET  /repos/{owner}/{repo}/releases?per_page=100 (paginated by the Link header)
- GET  /repos/{owner}/{repo}/releases/tags/{tag}
- POST /repos/{owner}/{repo}/releases
- GET  /repos/{owner}/{repo}/releases/{release_id}/assets?per_page=100 (paginated)
- POST {upload_url}?name=… on the uploads host, raw bytes
- GET  /repos/{owner}/{repo}/releases/assets/{asset_id} with Accept: application/octet-stream,
  answered by a 302 to the storage host
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from release.artifact import MANIFEST, SUMS, Artifact, Manifest
from release.errors import AlreadyPublished, AuthError, NotFound, StoreError, UsageError
from release.progress import Progressable
from release.store import Outcome, ReleaseInfo, newest_first, replace_dir

API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_WAIT = 60.0
CHUNK = 256 * 1024


class _Retryable(Exception):
    """A response worth retrying; `delay` is what the server asked for, if anything."""

    def __init__(self, response: httpx.Response, delay: float | None) -> None:
        super().__init__(f"GitHub answered {response.status_code}")
        self.response = response
        self.delay = delay


class GitHubStore:
    """Releases of one repository."""

    def __init__(
        self,
        owner: str,
        repo: str,
        token: str,
        *,
        api_url: str = API_URL,
        client: httpx.Client | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
    ) -> None:
        self.owner, self.repo = owner, repo
        self.label = f"github:{owner}/{repo}"
        self.api = api_url.rstrip("/")
        self.attempts = attempts
        self.backoff = backoff
        # The token is only ever in this header; it is never formatted into a message.
        self._client = client or httpx.Client(timeout=httpx.Timeout(30, read=120))
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "helionyx-release",
        }

    @classmethod
    def from_spec(cls, spec: str, *, token: str | None, api_url: str | None) -> GitHubStore:
        """`OWNER/REPO`, the token from GITHUB_TOKEN unless given."""
        owner, sep, repo = spec.partition("/")
        if not sep or not owner or not repo or "/" in repo:
            raise UsageError(f"github store {spec!r} is not OWNER/REPO")
        token = token if token is not None else os.environ.get("GITHUB_TOKEN", "")
        if not token:
            raise UsageError(
                "GITHUB_TOKEN is not set",
                hint="export a token with contents: write (never put it in a file in the repo)",
            )
        return cls(owner, repo, token, api_url=api_url or os.environ.get("GITHUB_API_URL", API_URL))

    # -- the store interface -----------------------------------------------------------
    def releases(self) -> list[ReleaseInfo]:
        """Every published release, newest first."""
        infos = []
        for release in self._paginate(f"{self._repo_url}/releases"):
            if release.get("draft"):
                continue
            tag = str(release["tag_name"])
            infos.append(
                ReleaseInfo(
                    version=tag[1:] if tag.startswith("v") else tag,
                    tag=tag,
                    sha=str(release.get("target_commitish", "")),
                    built_at=str(release.get("published_at") or release.get("created_at")),
                    size=sum(int(a.get("size", 0)) for a in release.get("assets", [])),
                )
            )
        return newest_first(infos)

    def publish(self, artifact: Artifact, notes: str, progress: Progressable) -> Outcome:
        """Create the release for the tag and upload every file; SHA256SUMS goes last."""
        manifest = artifact.manifest
        if manifest.tag is None:
            raise UsageError(
                f"{manifest.version} is a dev build",
                hint="only tagged releases are published; run make release first",
            )
        release = self._release_for_tag(manifest.tag)
        created = release is None
        if release is None:
            release = self._create_release(manifest, notes)
        elif release.get("target_commitish") not in (manifest.commit, None):
            raise AlreadyPublished(
                f"{self.label} has {manifest.tag} for commit "
                f"{str(release['target_commitish'])[:12]}, not {manifest.commit[:12]}",
                hint="releases are immutable; publish a new version",
                release=manifest.version,
            )
        assets = {a["name"]: a for a in self._paginate(self._assets_url(release))}
        if SUMS in assets:
            remote = self._download_bytes(assets[SUMS])
            if remote != (artifact.directory / SUMS).read_bytes():
                raise AlreadyPublished(
                    f"{self.label} already holds {manifest.tag} with different bytes",
                    hint="releases are immutable; publish a new version",
                    release=manifest.version,
                )
        uploads = [(p, name) for p, name in _asset_names(manifest) if name not in assets]
        if SUMS not in assets:
            uploads.append((SUMS, SUMS))
        for path, name in uploads:
            self._upload(release, artifact.directory / path, name, progress)
        if created:
            return Outcome.CREATED
        return Outcome.COMPLETED if uploads else Outcome.UNCHANGED

    def fetch(self, version: str, destination: Path, progress: Progressable) -> Path:
        """Download every asset of a release into `destination/<version>`."""
        tag = version if version.startswith("v") else f"v{version}"
        release = self._release_for_tag(tag)
        if release is None:
            raise NotFound(f"{self.label} has no release {tag}", hint="make releases-available")
        assets = {a["name"]: a for a in self._paginate(self._assets_url(release))}
        for required in (MANIFEST, SUMS):
            if required not in assets:
                raise StoreError(
                    f"release {tag} in {self.label} has no {required}",
                    hint="it was not published by this tool or its publish was interrupted",
                )
        manifest = Manifest.from_json(self._download_bytes(assets[MANIFEST]).decode())
        target = destination / manifest.version

        def fill(staging: Path) -> None:
            (staging / MANIFEST).write_bytes(self._download_bytes(assets[MANIFEST]))
            (staging / SUMS).write_bytes(self._download_bytes(assets[SUMS]))
            for path, name in _asset_names(manifest):
                if path == MANIFEST:
                    continue
                if name not in assets:
                    raise StoreError(f"release {tag} in {self.label} lacks the asset {name}")
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                self._download(assets[name], staging / path, progress)

        replace_dir(target, fill)
        return target

    # -- REST calls --------------------------------------------------------------------
    @property
    def _repo_url(self) -> str:
        return f"{self.api}/repos/{self.owner}/{self.repo}"

    def _assets_url(self, release: dict[str, Any]) -> str:
        return f"{self._repo_url}/releases/{release['id']}/assets"

    def _release_for_tag(self, tag: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._request(
                "GET", f"{self._repo_url}/releases/tags/{tag}"
            ).json()
        except NotFound:
            return None
        return found

    def _create_release(self, manifest: Manifest, notes: str) -> dict[str, Any]:
        body = {
            "tag_name": manifest.tag,
            "target_commitish": manifest.commit,
            "name": manifest.tag,
            "body": notes,
            "draft": False,
            "prerelease": False,
        }
        created: dict[str, Any] = self._request(
            "POST", f"{self._repo_url}/releases", json=body
        ).json()
        return created

    def _upload(
        self, release: dict[str, Any], path: Path, name: str, progress: Progressable
    ) -> None:
        # upload_url is a URI template: "https://uploads.github.com/…/assets{?name,label}".
        url = re.sub(r"\{[^}]*\}$", "", str(release["upload_url"]))
        size = path.stat().st_size
        progress.start(f"uploading {name}", size)
        try:
            self._request(
                "POST",
                url,
                params={"name": name},
                content=path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
                on_sent=lambda: progress.advance(size),
            )
        finally:
            progress.finish()

    def _download_bytes(self, asset: dict[str, Any]) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "asset"
            self._download(asset, target, None)
            return target.read_bytes()

    def _download(self, asset: dict[str, Any], target: Path, progress: Progressable | None) -> None:
        url = f"{self._repo_url}/releases/assets/{asset['id']}"
        headers = {**self._headers, "Accept": "application/octet-stream"}

        def attempt() -> None:
            with self._client.stream(
                "GET", url, headers=headers, follow_redirects=True
            ) as response:
                self._check(response, read=True)
                if progress is not None:
                    progress.start(f"downloading {asset['name']}", int(asset.get("size", 0)))
                try:
                    with target.open("wb") as handle:
                        for chunk in response.iter_bytes(CHUNK):
                            handle.write(chunk)
                            if progress is not None:
                                progress.advance(len(chunk))
                finally:
                    if progress is not None:
                        progress.finish()

        self._retrying(attempt)

    def _paginate(self, url: str) -> Iterator[dict[str, Any]]:
        next_url: str | None = url
        params: dict[str, Any] | None = {"per_page": 100}
        while next_url:
            response = self._request("GET", next_url, params=params)
            yield from response.json()
            next_url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own query

    def _request(
        self,
        method: str,
        url: str,
        *,
        on_sent: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        def attempt() -> httpx.Response:
            response = self._client.request(
                method, url, headers={**self._headers, **(headers or {})}, **kwargs
            )
            self._check(response)
            if on_sent is not None:
                on_sent()
            return response

        result: httpx.Response = self._retrying(attempt)
        return result

    def _retrying(self, attempt: Any) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise StoreError(
                f"GitHub answered {exc.response.status_code} after {self.attempts} attempts",
                hint="GitHub may be degraded or rate limiting; try again later",
            ) from None
        except httpx.TransportError as exc:
            raise StoreError(
                f"cannot reach GitHub ({type(exc).__name__})",
                hint="check the network and GITHUB_API_URL",
            ) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.delay is not None:
            return exc.delay
        return float(min(self.backoff * 2 ** (state.attempt_number - 1), MAX_WAIT))

    def _check(self, response: httpx.Response, *, read: bool = False) -> None:
        status = response.status_code
        if status < 400:
            return
        if read:
            response.read()
        delay = _server_delay(response)
        if status >= 500 or status == 429 or (status == 403 and delay is not None):
            if delay is not None and delay > MAX_WAIT:
                raise StoreError(
                    f"GitHub rate limit reached; it resets in {delay:.0f} s",
                    hint="wait for the reset or use a token with a higher limit",
                )
            raise _Retryable(response, delay)
        message = _message(response)
        if status == 401:
            raise AuthError(
                "GitHub rejected the token (401 Bad credentials)", hint="check GITHUB_TOKEN"
            )
        if status == 403:
            raise AuthError(
                f"GitHub refused the request (403 {message})",
                hint="the token needs contents: write on the repository",
            )
        if status == 404:
            raise NotFound(
                f"GitHub has no {response.request.url.path} (404)",
                hint="check OWNER/REPO and that the token can see the repository",
            )
        if status == 422:
            codes = ", ".join(
                str(e.get("code")) for e in _json(response).get("errors", []) if isinstance(e, dict)
            )
            raise StoreError(
                f"GitHub refused the request (422 {message}{': ' + codes if codes else ''})",
                hint="an asset or release of that name already exists"
                if "already_exists" in codes
                else "the request was invalid",
            )
        raise StoreError(f"GitHub answered {status} {message}")


def _asset_names(manifest: Manifest) -> list[tuple[str, str]]:
    """(path in the artifact, flat asset name) for every file; GitHub assets have no folders."""
    pairs = [(f.path, f.path.rsplit("/", 1)[-1]) for f in manifest.files]
    pairs.append((MANIFEST, MANIFEST))
    names = [name for _, name in pairs]
    if len(set(names)) != len(names):
        raise StoreError("two artifact files share a name; they cannot become GitHub assets")
    return pairs


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(response: httpx.Response) -> str:
    return str(_json(response).get("message", response.reason_phrase))


def _server_delay(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After, or the rate-limit reset."""
    retry_after = response.headers.get("retry-after")
    if retry_after is not None and retry_after.isdigit():
        return float(retry_after)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(0.0, float(reset) - time.time())
    return None

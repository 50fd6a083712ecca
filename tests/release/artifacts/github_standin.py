"""A local stand-in for the parts of GitHub's REST API that the release store uses.

It does what GitHub documents (API version 2022-11-28), failures included:
- https://docs.github.com/en/rest/releases/releases — list (drafts and prereleases included,
  `Link` pagination, `per_page` capped at 100), get by tag (never a draft), create (422
  `already_exists` for a taken tag). `target_commitish` is what the creator gave, a branch name
  (`main`) when none was: releases made in the web UI or by `gh release create` carry one.
- https://docs.github.com/en/rest/releases/assets — upload on the uploads host (422
  `already_exists` for a taken name, an unfinished upload included), delete, and download: the
  asset URL with `Accept: application/octet-stream` answers 302 to a pre-signed storage URL that
  refuses an Authorization header. An upload cut short leaves an asset in state `"starter"`
  that only the assets listing shows, and it keeps its name taken until deleted.
- https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api
  (follow redirects) — a renamed repository answers 301 on the API and uploads hosts, with a
  `Location` under `/repositories/{id}` and a `{"message": "Moved Permanently", "url"}` body.
- https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api — the primary
  limit (403/429, `x-ratelimit-remaining: 0`, with or without `x-ratelimit-reset`) and the
  secondary one (403/429 with its documented message, with or without `retry-after`).
- https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api — error bodies
  `{"message", "documentation_url", "status"}`; 401 `Bad credentials`; a 403 for missing
  permissions carries `X-Accepted-GitHub-Permissions` (sets separated by `;`, changelog
  2023-08-10); a 422 lists `errors` of `{resource, field, code}`, `custom` ones with a `message`
  (rest/overview/resources-in-the-rest-api#client-errors).
- https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api — without a token
  a public repository's releases can be read (60 requests an hour); a private one answers 404, and
  a write 401 `Requires authentication`. An organisation enforcing SAML SSO refuses a token not
  authorised for it with 403 and `X-GitHub-SSO: required; url=<where to authorise it>`.
- Creating a release whose `target_commitish` is a SHA GitHub does not have (never pushed) is
  422 `invalid` on `target_commitish`; a tag name git refuses is 422 `custom` with a message.
- Storage URLs behind the download redirect are signed and expire (a few minutes): an expired one
  answers 403 `AccessDenied` "Request has expired", and the API hands out a fresh one each time.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.helionyx.servicekit import poll

DOCS = "https://docs.github.com/rest/releases"
REPO_ID = 700123
PRIMARY_LIMIT = "API rate limit exceeded for installation ID 4242."
SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 0B2D:3C4E."
)


@dataclass
class Fault:
    """A scripted failure for the next request whose path contains `path_part`.

    With `starter`, an upload is recorded as an unfinished asset before the failure is answered;
    with `applied`, the request is carried out and its answer replaced by the failure (a 502 from
    a proxy after GitHub did the work).
    """

    path_part: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    starter: bool = False
    applied: bool = False


def primary_rate_limit(*, reset_in: float | None, status: int = 403) -> Fault:
    """The primary limit as GitHub answers it, with or without the reset header."""
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000",
    }
    if reset_in is not None:
        headers["x-ratelimit-reset"] = str(int(time.time() + reset_in))
    return Fault("/", status, headers, {"message": PRIMARY_LIMIT, "documentation_url": DOCS})


def saml_enforced(method: str | None = None) -> Fault:
    """An organisation's SAML SSO refusing a token that was not authorised for it."""
    headers = {
        "X-GitHub-SSO": "required; url=https://github.com/orgs/helionyx/sso?"
        "authorization_request=AZSCKtL4U8yX1H3sCQIVnVgmjmon5fWxks5YrqhJgah0b2tlbl9pZM4EuMz4"
    }
    body = {
        "message": "Resource protected by organization SAML enforcement. You must grant your "
        "Personal Access token access to this organization.",
        "documentation_url": "https://docs.github.com/articles/authenticating-to-a-github-"
        "organization-with-saml-single-sign-on/",
    }
    return Fault("/", 403, headers, body, method)


def insufficient_permission(accepted: str, method: str | None = None) -> Fault:
    """A fine-grained token without the permission the endpoint needs."""
    body = {
        "message": "Resource not accessible by personal access token",
        "documentation_url": DOCS,
    }
    return Fault("/", 403, {"X-Accepted-GitHub-Permissions": accepted}, body, method)


def secondary_rate_limit(*, retry_after: int | None, status: int = 403) -> Fault:
    """The secondary limit: its documented message, `retry-after` only sometimes."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    return Fault("/", status, headers, {"message": SECONDARY_LIMIT, "documentation_url": DOCS})


@dataclass
class GitHubStandIn:
    """Repository releases and assets, in memory."""

    owner: str
    repo: str
    token: str
    releases: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    former_names: set[tuple[str, str]] = field(default_factory=set)
    public: bool = False
    #: Commits GitHub has; None: every commit was pushed.
    pushed: set[str] | None = None
    #: How many of the next storage URLs are handed out already expired.
    expired_urls: int = 0
    api_url: str = ""
    uploads_url: str = ""
    objects_url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- helpers for tests -------------------------------------------------------------
    def seed_release(
        self,
        tag: str,
        commitish: str = "main",
        *,
        draft: bool = False,
        prerelease: bool = False,
        assets: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Add a release as the web UI or `gh release create` would, with its assets."""
        release = self._new_release(
            {
                "tag_name": tag,
                "target_commitish": commitish,
                "name": tag,
                "body": "",
                "draft": draft,
                "prerelease": prerelease,
            }
        )
        for name, data in (assets or {}).items():
            self._add_asset(release, name, data, "application/octet-stream", "uploaded")
        return release

    def rename(self, repo: str) -> None:
        """Rename the repository: the old name answers 301 from now on."""
        old = f"/{self.owner}/{self.repo}/"
        self.former_names.add((self.owner, self.repo))
        self.repo = repo
        # GitHub's answers name the repository as it is now called.
        with self._lock:
            for release in self.releases.values():
                for item in (release, *release["all_assets"]):
                    for key, value in item.items():
                        if key.endswith("url") and isinstance(value, str):
                            item[key] = value.replace(old, f"/{self.owner}/{repo}/")

    def asset_names(self, tag: str, *, state: str = "uploaded") -> list[str]:
        """Names of the assets of a release in `state`."""
        release = next(r for r in self.releases.values() if r["tag_name"] == tag)
        return [a["name"] for a in release["all_assets"] if a["state"] == state]

    def tamper(self, tag: str, name: str) -> None:
        """Flip one byte of a stored asset."""
        release = next(r for r in self.releases.values() if r["tag_name"] == tag)
        asset = next(a for a in release["all_assets"] if a["name"] == name)
        data = bytearray(self.blobs[asset["id"]])
        data[len(data) // 2] ^= 0x01
        self.blobs[asset["id"]] = bytes(data)

    def api_requests(self) -> int:
        """Requests to the API and uploads hosts (the storage host's are not API requests)."""
        return sum(1 for _, path, _ in self.requests if not path.startswith("/assets/"))

    # -- apps --------------------------------------------------------------------------
    def api_app(self) -> Starlette:
        """api.github.com."""
        routes = []
        for base in ("/repos/{owner}/{repo}/releases", "/repositories/{repo_id:int}/releases"):
            routes += [
                Route(base, self._applying(self._list_or_create), methods=["GET", "POST"]),
                Route(base + "/tags/{tag:path}", self._applying(self._by_tag), methods=["GET"]),
                Route(
                    base + "/assets/{asset_id:int}",
                    self._applying(self._asset),
                    methods=["GET", "DELETE"],
                ),
                Route(
                    base + "/{release_id:int}/assets",
                    self._applying(self._list_assets),
                    methods=["GET"],
                ),
            ]
        return Starlette(routes=routes)

    def uploads_app(self) -> Starlette:
        """uploads.github.com."""
        paths = (
            "/repos/{owner}/{repo}/releases/{release_id:int}/assets",
            "/repositories/{repo_id:int}/releases/{release_id:int}/assets",
        )
        return Starlette(
            routes=[Route(path, self._applying(self._upload), methods=["POST"]) for path in paths]
        )

    def objects_app(self) -> Starlette:
        """The storage host behind the download redirect (pre-signed, no auth header)."""
        return Starlette(routes=[Route("/assets/{asset_id:int}", self._object, methods=["GET"])])

    # -- common checks -----------------------------------------------------------------
    def _gate(self, request: Request) -> Response | None:
        self.requests.append(
            (request.method, request.url.path, request.headers.get("authorization"))
        )
        for fault in list(self.faults):
            if fault.path_part in request.url.path and fault.method in (None, request.method):
                self.faults.remove(fault)
                if fault.applied:
                    request.state.fault = fault
                    break
                if fault.starter:
                    self._start_upload(request)
                return _fault_answer(fault)
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if not auth and self.public and request.method == "GET":
            pass  # a public repository reads without a token
        elif not auth and request.method != "GET":
            return _error(401, "Requires authentication")
        elif not auth:
            return _error(404, "Not Found")  # GitHub does not admit a private repository exists
        elif scheme.lower() not in ("bearer", "token") or given != self.token:
            return _error(401, "Bad credentials")
        params = request.path_params
        if "repo_id" in params:
            return None if params["repo_id"] == REPO_ID else _error(404, "Not Found")
        owner, repo = params.get("owner"), params.get("repo")
        if (owner, repo) in self.former_names:
            # GitHub moves a renamed repository's API to its id, on both hosts.
            prefix = f"/repos/{owner}/{repo}"
            moved = request.url.replace(
                path=f"/repositories/{REPO_ID}" + request.url.path[len(prefix) :]
            )
            return JSONResponse(
                {"message": "Moved Permanently", "url": str(moved), "documentation_url": DOCS},
                status_code=301,
                headers={"Location": str(moved)},
            )
        if (owner, repo) != (self.owner, self.repo):
            return _error(404, "Not Found")
        return None

    # -- API endpoints -----------------------------------------------------------------
    async def _list_or_create(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        if request.method == "GET":
            ordered = sorted(self.releases.values(), key=lambda r: r["id"], reverse=True)
            return self._page(request, [_public(r) for r in ordered])
        body = await request.json()
        if not body.get("tag_name"):
            return _validation("Release", "missing_field", "tag_name")
        if any(r["tag_name"] == body["tag_name"] for r in self.releases.values()):
            return _validation("Release", "already_exists", "tag_name")
        if not _valid_ref(body["tag_name"]):
            return _validation("Release", "custom", "tag_name", "tag_name is not a valid tag")
        commitish = str(body.get("target_commitish") or "")
        unknown = self.pushed is not None and commitish not in self.pushed
        if re.fullmatch(r"[0-9a-f]{40}", commitish) and unknown:
            return _validation("Release", "invalid", "target_commitish")
        return JSONResponse(_public(self._new_release(body)), status_code=201)

    async def _by_tag(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        for release in self.releases.values():
            if release["tag_name"] == request.path_params["tag"] and not release["draft"]:
                return JSONResponse(_public(release))
        return _error(404, "Not Found")

    async def _list_assets(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        release = self.releases.get(request.path_params["release_id"])
        if release is None:
            return _error(404, "Not Found")
        return self._page(request, release["all_assets"])

    async def _asset(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        asset_id = request.path_params["asset_id"]
        asset = self._find_asset(asset_id)
        if asset is None:
            return _error(404, "Not Found")
        if request.method == "DELETE":
            with self._lock:
                for release in self.releases.values():
                    release["all_assets"] = [
                        a for a in release["all_assets"] if a["id"] != asset_id
                    ]
                self.blobs.pop(asset_id, None)
            return Response(status_code=204)
        if request.headers.get("accept") == "application/octet-stream":
            expires = int(time.time()) + 300
            if self.expired_urls:
                self.expired_urls -= 1
                expires = int(time.time()) - 1
            query = urlencode({"se": expires, "sig": _signature(asset_id, expires, self.token)})
            return RedirectResponse(
                f"{self.objects_url}/assets/{asset_id}?{query}", status_code=302
            )
        return JSONResponse(asset)

    async def _upload(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        release = self.releases.get(request.path_params["release_id"])
        if release is None:
            return _error(404, "Not Found")
        name = request.query_params.get("name")
        if not name:
            return _validation("ReleaseAsset", "missing_field", "name")
        if not request.headers.get("content-type"):
            return _error(400, "Content-Type header is required")
        data = await request.body()
        with self._lock:
            if any(a["name"] == name for a in release["all_assets"]):
                return _validation("ReleaseAsset", "already_exists", "name")
            asset = self._add_asset(
                release, name, data, request.headers["content-type"], "uploaded", locked=True
            )
        return JSONResponse(asset, status_code=201)

    async def _object(self, request: Request) -> Response:
        self.requests.append(
            (request.method, request.url.path, request.headers.get("authorization"))
        )
        # Pre-signed storage URLs refuse a second credential, as S3 does.
        if "authorization" in request.headers:
            return Response("<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        asset_id = request.path_params["asset_id"]
        expires = int(request.query_params.get("se", "0"))
        if request.query_params.get("sig") != _signature(asset_id, expires, self.token):
            return Response("<Error><Code>AuthenticationFailed</Code></Error>", status_code=403)
        if expires < time.time():
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                status_code=403,
            )
        asset = self._find_asset(asset_id)
        if asset_id not in self.blobs or asset is None or asset["state"] != "uploaded":
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404)
        return Response(self.blobs[asset_id], media_type="application/octet-stream")

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _applying(endpoint: Any) -> Any:
        """Answer a fault marked `applied` after the endpoint did its work."""

        async def answer(request: Request) -> Response:
            response: Response = await endpoint(request)
            fault = getattr(request.state, "fault", None)
            return response if fault is None else _fault_answer(fault)

        return answer

    def _start_upload(self, request: Request) -> None:
        """An upload cut short: GitHub keeps an empty asset in state "starter"."""
        release = self.releases.get(request.path_params.get("release_id", -1))
        name = request.query_params.get("name")
        if release is not None and name and name not in {a["name"] for a in release["all_assets"]}:
            self._add_asset(release, name, b"", "application/octet-stream", "starter")

    def _add_asset(
        self,
        release: dict[str, Any],
        name: str,
        data: bytes,
        content_type: str,
        state: str,
        *,
        locked: bool = False,
    ) -> dict[str, Any]:
        if not locked:
            with self._lock:
                return self._add_asset(release, name, data, content_type, state, locked=True)
        asset_id = next(self._ids)
        now = _now()
        asset = {
            "url": f"{self.api_url}/repos/{self.owner}/{self.repo}/releases/assets/{asset_id}",
            "browser_download_url": f"https://github.com/{self.owner}/{self.repo}/releases/"
            f"download/{release['tag_name']}/{name}",
            "id": asset_id,
            "node_id": f"RA_{asset_id}",
            "name": name,
            "label": "",
            "state": state,
            "content_type": content_type,
            "size": len(data),
            "digest": "sha256:" + hashlib.sha256(data).hexdigest() if state == "uploaded" else None,
            "download_count": 0,
            "created_at": now,
            "updated_at": now,
            "uploader": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
        }
        release["all_assets"].append(asset)
        self.blobs[asset_id] = data
        return asset

    def _new_release(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            release_id = next(self._ids)
            now = _now()
            repo_url = f"{self.api_url}/repos/{self.owner}/{self.repo}"
            release = {
                "url": f"{repo_url}/releases/{release_id}",
                "html_url": f"https://github.com/{self.owner}/{self.repo}/releases/tag/"
                f"{body['tag_name']}",
                "assets_url": f"{repo_url}/releases/{release_id}/assets",
                "upload_url": f"{self.uploads_url}/repos/{self.owner}/{self.repo}/releases/"
                f"{release_id}/assets{{?name,label}}",
                "tarball_url": f"{repo_url}/tarball/{body['tag_name']}",
                "zipball_url": f"{repo_url}/zipball/{body['tag_name']}",
                "id": release_id,
                "node_id": f"RE_{release_id}",
                "tag_name": body["tag_name"],
                # GitHub's default when none is given is the repository's default branch.
                "target_commitish": body.get("target_commitish") or "main",
                "name": body.get("name") or body["tag_name"],
                "body": body.get("body", ""),
                "draft": bool(body.get("draft", False)),
                "prerelease": bool(body.get("prerelease", False)),
                "created_at": now,
                "published_at": None if body.get("draft") else now,
                "author": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
                "all_assets": [],
            }
            self.releases[release_id] = release
        return release

    def _find_asset(self, asset_id: int) -> dict[str, Any] | None:
        for release in self.releases.values():
            for asset in release["all_assets"]:
                if asset["id"] == asset_id:
                    return dict(asset)
        return None

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        per_page = min(int(request.query_params.get("per_page", 30)), 100)
        page = int(request.query_params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        base = str(request.url.remove_query_params(["page", "per_page"]))

        def link(number: int, rel: str) -> str:
            return f'<{base}?{urlencode({"per_page": per_page, "page": number})}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return JSONResponse(chunk, headers=headers)


def _fault_answer(fault: Fault) -> Response:
    body = fault.body or {"message": "Server Error", "documentation_url": DOCS}
    return JSONResponse(body, status_code=fault.status, headers=fault.headers)


def _signature(asset_id: int, expires: int, secret: str) -> str:
    return hashlib.sha256(f"{asset_id}:{expires}:{secret}".encode()).hexdigest()[:16]


def _valid_ref(name: str) -> bool:
    """git check-ref-format's rules, the ones a tag name meets most often."""
    bad = (" ", "~", "^", ":", "?", "*", "[", "\\", "..", "@{")
    return not any(b in name for b in bad) and not name.endswith((".", "/", ".lock"))


def _public(release: dict[str, Any]) -> dict[str, Any]:
    """A release as the API shows it: embedded assets are only the finished uploads."""
    shown = {k: v for k, v in release.items() if k != "all_assets"}
    shown["assets"] = [a for a in release["all_assets"] if a["state"] == "uploaded"]
    return shown


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message, "documentation_url": DOCS, "status": str(status)}, status_code=status
    )


def _validation(resource: str, code: str, name: str, message: str = "") -> JSONResponse:
    error = {"resource": resource, "code": code, "field": name}
    if message:
        error["message"] = message
    return JSONResponse(
        {
            "message": "Validation Failed",
            "errors": [error],
            "documentation_url": DOCS,
            "status": "422",
        },
        status_code=422,
    )


@contextmanager
def serving(
    owner: str = "helionyx", repo: str = "helionyx", token: str = "ghs_testtoken"
) -> Iterator[GitHubStandIn]:
    """Run the three origins on loopback ports for the duration of the context."""
    standin = GitHubStandIn(owner, repo, token)
    servers = []
    for app, attr in (
        (standin.api_app(), "api_url"),
        (standin.uploads_app(), "uploads_url"),
        (standin.objects_app(), "objects_url"),
    ):
        # Bound here and handed over: a port picked first and bound later can be taken between.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        server = uvicorn.Server(uvicorn.Config(app, log_config=None))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        setattr(standin, attr, f"http://127.0.0.1:{port}")
    for server, _ in servers:
        poll(lambda s=server: s.started or None, 10, "the GitHub stand-in to start")  # type: ignore[misc]
    try:
        yield standin
    finally:
        # All three told first, then awaited: each takes a tick of its loop to notice.
        # Nothing in flight is worth waiting for once the test is over.
        for server, _ in servers:
            server.should_exit = server.force_exit = True
        for _, thread in servers:
            thread.join(timeout=10)

"""GitHub's REST API as GitHub documents it: redirects, retries, rate limits, errors.

Rules followed (docs.github.com, API version 2022-11-28):
- rest/using-the-rest-api/best-practices-for-using-the-rest-api#follow-redirects: any request may
  be redirected; 301 means the resource moved for good (a renamed or transferred repository),
  302/307 repeat the request verbatim at `Location`. The token goes only to the origin it was
  sent to (downloads redirect to a storage host that must not see it).
- rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit: a 403 or 429
  is a rate limit when it carries `retry-after`, `x-ratelimit-remaining: 0`, or a message saying
  so. Wait `retry-after` seconds, else until `x-ratelimit-reset`, else at least a minute, growing.
- 5xx answers are retried with exponential backoff; 4xx are one line each and never retried,
  in GitHub's own words (`release.artifacts.github_answers`).
- Reading a public repository needs no token (60 requests an hour): without one, no
  Authorization header is sent, and a refusal says a token may be what is missing.
- A download redirects to a storage host with a signed, short-lived address; a refusal from
  there (an address that expired before it was used) is answered by asking GitHub for a fresh one,
  once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from release.artifacts.github_answers import (
    invalid,
    message_of,
    refusal,
    seconds_in,
)
from release.clock import Clock, SystemClock, utc_clock_time
from release.errors import RetryLater, StoreError
from release.progress import Progressable

API_VERSION = "2022-11-28"
MAX_REDIRECTS = 5
TOTAL_WAIT = 180.0  # seconds one request may spend waiting before it gives up and says why
MINUTE = 60.0
CHUNK = 256 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
T = TypeVar("T")


class GitHubClient:
    """Authenticated requests to one GitHub API, following GitHub's rules for clients."""

    def __init__(
        self,
        token: str | None,
        *,
        client: httpx.Client | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
        clock: Clock | None = None,
        notify: Callable[[str], None] = lambda _: None,
        on_moved: Callable[[httpx.URL, httpx.URL], None] = lambda _old, _new: None,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock or SystemClock()
        self.notify = notify
        self.on_moved = on_moved
        self._client = client or httpx.Client(timeout=httpx.Timeout(30, read=120))
        self.anonymous = not token
        # The token is only ever in this header; it is never formatted into a message.
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "helionyx-release",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send, following redirects and retrying what GitHub says to retry; 2xx or raise."""

        def attempt() -> httpx.Response:
            response = self._send(
                method, url, params=params, json=json, content=content, extra=headers
            )
            self._check(response)
            return response

        return self._retrying(f"{method} {httpx.URL(url).path}", attempt)

    def download(
        self, url: str, target: Path, progress: Progressable | None, label: str, size: int
    ) -> None:
        """Stream an asset's bytes into `target` (a retry starts the file again)."""
        headers = {"Accept": "application/octet-stream"}

        def attempt() -> None:
            response = self._send("GET", url, extra=headers, stream=True)
            if _refused_by_storage(response, url):
                # The signed address expired before it was used: ask GitHub for a fresh one.
                response.close()
                response = self._send("GET", url, extra=headers, stream=True)
                if _refused_by_storage(response, url):
                    status = response.status_code
                    response.close()
                    raise StoreError(
                        f"GitHub's storage host refused the download of {label} ({status}) "
                        "twice, with a fresh signed address each time",
                        hint="the token is never sent there; try again later, and if it "
                        "persists check githubstatus.com",
                    )
            try:
                self._check(response, read=True)
                if progress is not None:
                    progress.start(f"downloading {label}", size)
                try:
                    with target.open("wb") as handle:
                        for chunk in response.iter_bytes(CHUNK):
                            handle.write(chunk)
                            if progress is not None:
                                progress.advance(len(chunk))
                finally:
                    if progress is not None:
                        progress.finish()
            finally:
                response.close()

        self._retrying(f"download of {label}", attempt)

    # -- redirects ---------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        extra: dict[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        headers = {**self._headers, **(extra or {})}
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            request = self._client.build_request(
                method, target, params=params, json=json, content=content, headers=headers
            )
            response = self._client.send(request, stream=stream, follow_redirects=False)
            if response.status_code not in _REDIRECTS:
                return response
            location = response.headers.get("location")
            response.close()
            if not location:
                raise StoreError(
                    f"GitHub answered {response.status_code} for {target.path} without a Location",
                    hint="report it to GitHub; nothing was changed",
                )
            moved = request.url.join(location)
            if response.status_code in (301, 308):
                self.on_moved(request.url, moved)
            if response.status_code == 303:
                method, json, content = "GET", None, None
            if _origin(moved) != _origin(request.url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            # The new location carries its own query; the old parameters must not be added again.
            target, params = moved, None
        raise StoreError(
            f"GitHub redirected {httpx.URL(url).path} more than {MAX_REDIRECTS} times",
            hint="check OWNER/REPO and GITHUB_API_URL",
        )

    # -- retries -----------------------------------------------------------------------
    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        waited = 0.0
        limited = 0
        last: RetryLater | None = None
        for number in range(1, self.attempts + 1):
            try:
                return attempt()
            except RetryLater as exc:
                last = exc
            except httpx.TransportError as exc:
                last = RetryLater(f"cannot reach GitHub ({type(exc).__name__})", None, 0, "")
            if number == self.attempts:
                break
            if last.seconds is None and last.status in (403, 429):
                limited += 1
                seconds = MINUTE * 2 ** (limited - 1)
            elif last.seconds is None:
                seconds = min(self.backoff * 2 ** (number - 1), MINUTE)
            else:
                seconds = last.seconds
            if waited + seconds > TOTAL_WAIT:
                # Whose number it is matters: GitHub's is a promise, ours is a guess.
                who = (
                    "GitHub asks to wait"
                    if last.seconds is not None
                    else "GitHub named no time; our own back-off would wait"
                )
                raise StoreError(
                    f"{last.reason}; {who} {seconds:.0f} s more "
                    f"(until {utc_clock_time(self.clock.time() + seconds)})",
                    hint="try again then, or use a token with a higher limit",
                ) from None
            if seconds > 1:
                until = utc_clock_time(self.clock.time() + seconds)
                self.notify(f"{last.reason}: waiting {seconds:.0f} s, until {until}")
            self.clock.sleep(seconds)
            waited += seconds
        assert last is not None
        if last.status == 0:
            raise StoreError(last.reason, hint="check the network and GITHUB_API_URL")
        raise StoreError(
            f"{last.reason} after {self.attempts} attempts ({what})",
            hint="GitHub may be degraded or rate limiting; try again later",
        )

    # -- answers -----------------------------------------------------------------------
    def _check(self, response: httpx.Response, *, read: bool = False) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if read:
            response.read()
        message = message_of(response)
        pause = self._pause(response, message)
        if pause is not None:
            raise pause
        if status in (401, 403, 404):
            raise refusal(response, message, anonymous=self.anonymous)
        if status == 422:
            raise invalid(response, message)
        raise StoreError(f"GitHub answered {status} {message}")

    def _pause(self, response: httpx.Response, message: str) -> RetryLater | None:
        """The wait GitHub asks for, if this answer is worth retrying at all."""
        status = response.status_code
        retry_after = seconds_in(response.headers.get("retry-after"))
        if status >= 500:
            return RetryLater(f"GitHub answered {status} ({message})", retry_after, status, message)
        if status not in (403, 429):
            return None
        secondary = "secondary rate limit" in message.lower()
        reason = "GitHub's secondary rate limit" if secondary else "GitHub's rate limit"
        if retry_after is not None:
            return RetryLater(f"{reason} ({message})", retry_after, status, message)
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = seconds_in(response.headers.get("x-ratelimit-reset"))
            wait = None if reset is None else max(0.0, reset - self.clock.time()) + 1
            return RetryLater(f"{reason} ({message})", wait, status, message)
        if secondary or "rate limit" in message.lower() or status == 429:
            return RetryLater(f"{reason} ({message})", None, status, message)
        return None


def _refused_by_storage(response: httpx.Response, asked: str) -> bool:
    """Whether a download ended refused on another origin (the storage host)."""
    moved = _origin(response.request.url) != _origin(httpx.URL(asked))
    return moved and response.status_code in (401, 403)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port

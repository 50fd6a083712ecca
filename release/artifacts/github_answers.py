"""What GitHub's answers mean: refusals in its own words, and JSON bodies as documented.

Rules followed (docs.github.com, API version 2022-11-28):
- rest/overview/resources-in-the-rest-api#client-errors: a 422 lists `errors` of
  `{resource, field, code}`, a `custom` one with a `message`; all of it reaches the operator.
- authenticating-to-the-rest-api#authenticating-for-saml-sso: a 403 with
  `X-GitHub-SSO: required; url=…` means the token must be authorised for the organisation there.
- troubleshooting-the-rest-api#insufficient-permission-errors: `X-Accepted-GitHub-Permissions`
  names the permission sets that would do, `;` between alternatives (changelog 2023-08-10).
- Without a token a private repository answers 404 and a write 401: the message says a token
  may be what is missing.
"""

from __future__ import annotations

from typing import Any

import httpx

from release.errors import AuthError, Conflict, NotFound, StoreError


def refusal(response: httpx.Response, message: str, *, anonymous: bool) -> StoreError:
    """A 401, 403 or 404 in GitHub's words, with the way out GitHub's headers name."""
    status, request = response.status_code, response.request
    writing = request.method not in ("GET", "HEAD")
    needs = _permissions(response.headers.get("x-accepted-github-permissions"))
    needs = needs or ("contents: write" if writing else "contents: read")
    if status == 401 and anonymous:
        return AuthError(
            f"GitHub wants a token for {request.method} {request.url.path} (401 {message})",
            hint=f"export GITHUB_TOKEN with {needs} (never put it in a file in the repo)",
        )
    if status == 401:
        return AuthError(f"GitHub rejected the token (401 {message})", hint="check GITHUB_TOKEN")
    if status == 403:
        sso = response.headers.get("x-github-sso", "")
        if sso.startswith("required"):
            url = _sso_url(sso)
            return AuthError(
                f"GitHub refused the request: the organisation enforces SAML single sign-on "
                f"(403 {message})",
                hint="authorise the token for the organisation's single sign-on"
                + (f" at {url}" if url else "")
                + ", then try again",
            )
        if anonymous:
            return AuthError(
                f"GitHub refused {request.method} {request.url.path} without a token "
                f"(403 {message})",
                hint=f"export GITHUB_TOKEN with {needs}",
            )
        return AuthError(
            f"GitHub refused {request.method} {request.url.path} (403 {message})",
            hint=f"the token needs {needs} on the repository",
        )
    if anonymous:
        hint = "check OWNER/REPO; a private repository needs GITHUB_TOKEN with contents: read"
    else:
        hint = "check OWNER/REPO and that the token can see the repository"
    return NotFound(f"GitHub has no {request.url.path} (404)", hint=hint)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or a StoreError naming the endpoint."""
    data = _decoded(response)
    if not isinstance(data, dict):
        raise _unexpected(response)
    return data


def json_list(response: httpx.Response) -> list[dict[str, Any]]:
    """The body as a JSON list of objects, or a StoreError naming the endpoint."""
    data = _decoded(response)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise _unexpected(response)
    return data


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _unexpected(response) from None


def _unexpected(response: httpx.Response) -> StoreError:
    return StoreError(
        f"GitHub answered {response.request.url.path} with something that is not the "
        f"documented JSON ({response.status_code})",
        hint="check GITHUB_API_URL points at GitHub's REST API",
    )


def invalid(response: httpx.Response, message: str) -> StoreError:
    """A 422 with every error GitHub listed: resource, field, code and its own message."""
    raw = _json(response).get("errors")
    errors = raw if isinstance(raw, list) else []
    words = []
    for error in errors:
        if not isinstance(error, dict):
            words.append(str(error))
            continue
        where = ".".join(str(error[k]) for k in ("resource", "field") if error.get(k))
        said = " ".join(str(x) for x in (where, error.get("code")) if x)
        if error.get("message"):
            said += f" ({error['message']})"
        words.append(said)
    text = f"GitHub refused the request (422 {message}{': ' + '; '.join(words) if words else ''})"
    codes = {(e.get("field"), e.get("code")) for e in errors if isinstance(e, dict)}
    if any(code == "already_exists" for _, code in codes):
        return Conflict(text, hint="an asset or release of that name already exists")
    if ("target_commitish", "invalid") in codes:
        return StoreError(
            text, hint="GitHub does not have that commit: push the commit and tag first"
        )
    return StoreError(text, hint="nothing was changed; fix what GitHub names and try again")


def _permissions(header: str | None) -> str:
    """`contents=read,metadata=read; x=write` as `contents: read and metadata: read, or x: write`.

    GitHub separates alternative permission sets with `;` (changelog 2023-08-10).
    """
    sets = []
    for alternative in (header or "").split(";"):
        pairs = [p.strip().replace("=", ": ") for p in alternative.split(",") if p.strip()]
        if pairs:
            sets.append(" and ".join(pairs))
    return ", or ".join(sets)


def _sso_url(header: str) -> str:
    """The authorisation URL in `X-GitHub-SSO: required; url=https://…`."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "url" and value.startswith("https://"):
            return value
    return ""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def message_of(response: httpx.Response) -> str:
    return str(_json(response).get("message") or response.reason_phrase)


def seconds_in(value: str | None) -> float | None:
    text = (value or "").strip()
    return float(text) if text.isascii() and text.isdigit() else None

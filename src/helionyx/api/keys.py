"""The Idempotency-Key request header (IETF httpapi draft): an sf-string, or a bare token."""

from __future__ import annotations

import re

from fastapi import HTTPException, status

MAX_KEY = 255
KEY_HEADER_DOC = (
    "Makes a retried POST safe: the same key with the same body answers as the first time "
    "and stores nothing; with another body, 422. A quoted string (RFC 8941) or a bare token "
    f"of 1-{MAX_KEY} printable ASCII characters; remembered as long as the event log."
)
#: What the OpenAPI schema says the header accepts (the parser below is the rule itself).
KEY_SCHEMA: dict[str, object] = {
    "minLength": 1,
    "maxLength": MAX_KEY + 2,
    "pattern": r'^(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])+"|[\x21\x23-\x7e]+)$',
    "examples": ['"8e03978e-40d5-43e8-bc93-6894a57f9324"'],
}
_QUOTED = re.compile(r'^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])+)"$')
_BARE = re.compile(r"^[\x21\x23-\x7e]+$")


def parse_key(header: str | None) -> str | None:
    """The key a request carries, None without one, or a 400 that says what is wrong."""
    if header is None:
        return None
    text = header.strip()
    quoted = _QUOTED.match(text)
    key = re.sub(r'\\(["\\])', r"\1", quoted.group(1)) if quoted else text
    if not (quoted or _BARE.match(text)) or not 0 < len(key) <= MAX_KEY:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"Idempotency-Key must be a quoted string of 1-{MAX_KEY} printable ASCII "
            'characters, e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"',
        )
    return key

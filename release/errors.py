"""The pipeline's exception hierarchy. The CLI turns each into one line and an exit code."""

from __future__ import annotations


class ReleaseError(Exception):
    """Base of every error the pipeline raises on purpose.

    `hint` says how to fix it; `host`, `env` and `release` say where it happened.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        host: str | None = None,
        env: str | None = None,
        release: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.host = host
        self.env = env
        self.release = release

    def __str__(self) -> str:
        where = ", ".join(
            f"{name} {value}"
            for name, value in (("env", self.env), ("host", self.host), ("release", self.release))
            if value
        )
        text = f"{self.message} ({where})" if where else self.message
        return f"{text}; {self.hint}" if self.hint else text


class UsageError(ReleaseError):
    """Bad input from the operator: a malformed version, an unknown env or store."""

    exit_code = 2


class GitError(ReleaseError):
    """The repository is not in a state the command can work from."""


class ChangelogError(ReleaseError):
    """CHANGELOG.md does not have what a release needs."""


class BuildError(ReleaseError):
    """Building the wheel, lock or wheelhouse failed."""


class ArtifactError(ReleaseError):
    """An artifact is incomplete, inconsistent or tampered with."""


class ChecksumMismatch(ArtifactError):
    """A file's bytes differ from what SHA256SUMS or the manifest says."""

    def __init__(self, path: str, expected: str, actual: str, **context: str | None) -> None:
        super().__init__(
            f"checksum mismatch for {path}: expected {expected[:16]}…, got {actual[:16]}…",
            hint="the artifact was altered or damaged; rebuild or re-download it",
            **context,
        )
        self.path = path


class StoreError(ReleaseError):
    """A release store refused or failed an operation."""


class NotFound(StoreError):
    """The store does not hold that release."""


class AlreadyPublished(StoreError):
    """The store holds that version with different bytes; releases are immutable."""


class Conflict(StoreError):
    """The store already has something of that name (GitHub's 422 `already_exists`)."""


class AuthError(StoreError):
    """The store rejected our credentials."""


class ConnectionFailed(ReleaseError):
    """The host could not be reached or did not prove its identity."""


class RequestNotSent(ConnectionFailed):
    """The connection was gone before a request left: the host never saw it."""


class SessionClosed(ReleaseError):
    """A long-running remote command ended or stopped answering."""


class ConnectionLost(ConnectionFailed):
    """An established connection broke during a transfer (worth one more try on a new one)."""

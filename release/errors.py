"""The pipeline's exceptions: every error it raises on purpose, in one tree.

    ReleaseError                 exit 1 unless said otherwise; message, hint, where, details
    ├── UsageError               exit 2: bad input (version, env, store, file, option)
    ├── GitError                 the repository is not in a state to work from
    ├── ChangelogError           CHANGELOG.md lacks what a release needs
    ├── BuildError               building the wheel, lock or wheelhouse failed
    ├── ArtifactError            an artifact is incomplete, inconsistent or tampered with
    │   └── ChecksumMismatch     a file's bytes differ from SHA256SUMS or the manifest
    ├── StoreError               a release store refused or failed
    │   ├── NotFound             the store does not hold that release
    │   ├── AlreadyPublished     that version is there with other bytes (immutable)
    │   ├── Conflict             something of that name exists (GitHub 422 already_exists)
    │   ├── AuthError            credentials rejected or not allowed
    │   ├── ForeignRelease       a release holds a manifest.json this tool did not write
    │   └── RetryLater           an answer worth another attempt (never leaves the client)
    ├── ConnectionFailed         the host is unreachable or did not prove its identity
    │   ├── RequestNotSent       gone before the request left: the host never saw it
    │   └── ConnectionLost       broke mid-transfer (worth one more try on a new one)
    ├── SessionClosed            the host agent's session ended or stopped answering
    ├── HostError                the host (its agent) refused or failed a step
    │   └── UnsupportedHost      its python3, machine or glibc is not one the release serves
    ├── LockHeld                 another operation holds the environment's lock
    ├── NotSetUp                 the environment was never prepared on the host
    └── OperationFailed          deploy, rollback, restart or restore left it unhealthy

`release.cli.main` is the one place that turns them into `error: …` (plus any `details`
lines, e.g. the journal) and an exit code. The host agent has its own tree
(`release.agent.errors`); its refusals reach this side as HostError.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReleaseError(Exception):
    """Base of every error the pipeline raises on purpose.

    `hint` says how to fix it; `host`, `env` and `release` say where it happened; `details`
    are lines shown under the message (a journal's tail).
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
        details: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.host = host
        self.env = env
        self.release = release
        self.details = tuple(details)

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

    def __init__(
        self, path: str, expected: str, actual: str, *, release: str | None = None
    ) -> None:
        super().__init__(
            f"checksum mismatch for {path}: expected {expected[:16]}…, got {actual[:16]}…",
            hint="the artifact was altered or damaged; rebuild or re-download it",
            release=release,
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


class ForeignRelease(StoreError):
    """A release in the store holds a manifest.json that is not one this tool wrote."""


class RetryLater(StoreError):
    """An answer worth another attempt: why, after how long (None: the client's own backoff),
    and the status and message it came with (status 0: no answer at all)."""

    def __init__(self, reason: str, seconds: float | None, status: int, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seconds = seconds
        self.status = status
        self.status_message = message


class ConnectionFailed(ReleaseError):
    """The host could not be reached or did not prove its identity."""


class RequestNotSent(ConnectionFailed):
    """The connection was gone before a request left: the host never saw it."""


class ConnectionLost(ConnectionFailed):
    """An established connection broke during a transfer (worth one more try on a new one)."""


class SessionClosed(ReleaseError):
    """A long-running remote command ended or stopped answering."""


class HostError(ReleaseError):
    """The host refused or failed an operation."""


class UnsupportedHost(HostError):
    """The host's interpreter, machine or C library is not one the release (or the agent) runs
    on; found before anything on the host changed."""


class LockHeld(ReleaseError):
    """Another operation holds the environment's lock."""


class NotSetUp(ReleaseError):
    """The environment was never prepared on the host."""


class OperationFailed(ReleaseError):
    """A deploy, rollback, restart or restore left the env unhealthy; `details` holds the
    journal's last lines."""

"""What the operator and the host agent say to each other: one definition both sides import.

Standard library only, like the rest of the agent package: it travels to the host. Each
command is a `Command[Req, Ans]`: the operator sends `host.call(LOCK({...}))`, a request mypy
has checked against `Req` and whose answer it reads as `Ans`; the agent's handler for it is
checked against the same two types (`serve.HANDLERS`). On the wire a request is one JSON line,
a `Message`; the answer is one JSON line, an `Answer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

# -- file names on the host and in artifacts -----------------------------------------------
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
DEPLOY_LOG = "deploy-log.jsonl"
LOCK_DIR = ".lock"
HOLDER_FILE = "holder.json"
BUILD_LOCK = ".build.lock"
#: Present while a watch runs and the operator asked to end it early (Ctrl-C).
WATCH_CUT = ".watch-cut"
#: The settings that shape an env on the host, as set up (listen address, port, paths).
HOST_SETTINGS = "host-settings.json"
#: Beside the read models: the release a forced rollback let serve a log it cannot wholly read.
FORCED_READ = "forced-read.json"
#: An activation under way (`recovery`): written before the switch, removed once it is recorded.
ACTIVATION = "activation.json"
#: Beside `current`: the hand-over asked of the running service (read by `helionyx.handover`).
HANDOVER_REQUEST = "handover.json"
#: Where the agent's boot-time recovery is installed in the env's base dir (`recovery.install`).
AGENT_DIR = "agent"
RELEASES_DIR = "releases"
CURRENT = "current"
PREVIOUS = "previous"
SERVICE_USER = "helionyx"

# -- deploy-log vocabulary -------------------------------------------------------------------
#: The step of an operation's closing record.
FINISH = "finish"
#: The step that flipped `current` in deploys made before the host finished them itself.
SWITCH = "switch"
SUCCEEDED = "succeeded"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
NOOP = "noop"
#: Outcomes of a single recorded step (not an operation).
STEP_OK = "ok"
#: Actions that put a release live (their outcomes say whether it was healthy).
GOING_LIVE = ("deploy", "rollback")


class LogRecord(TypedDict, total=False):
    """One line of deploy-log.jsonl: a step of an operation, or its `finish` record."""

    deploy_id: str
    action: str
    env: str
    operator: str
    step: str
    outcome: str
    reason: str
    started_at: str
    ended_at: str
    version: str | None
    sha: str | None
    previous_sha: str | None
    source: str | None
    journal: list[str]
    backup: str
    event_count: int
    #: Why a refusal was overridden (FORCE=1 REASON=…); who is `operator`.
    forced: str
    #: A read model built for the release (MIGRATE=1): `projections 1 -> 2`.
    migrated: str
    #: What a forced operation skipped (the staging gate's refusal).
    skipped: str
    #: The env a promoted release came from.
    promoted_from: str


# -- shared values -------------------------------------------------------------------------------
class EventContract(TypedDict):
    """What a release does with one event type: the highest schema version it reads, and the
    one it writes."""

    reads: int
    writes: int


class EventVersion(TypedDict):
    """The highest schema version of one event type in a log, and when the first was written."""

    version: int
    first_at: str


class DataContract(TypedDict):
    """What a release reads and writes (`manifest.json`'s `data_contract`)."""

    #: The projections' schema version (a different one needs its own read model).
    projections: int
    events: dict[str, EventContract]


class HostPlatform(TypedDict):
    """The host's interpreter, machine and C library: what a release's wheels must match."""

    #: `platform.python_version()` of the host's python3, e.g. "3.11.2".
    python: str
    #: `sys.implementation.name`: "cpython" for the interpreters artifacts are built for.
    implementation: str
    #: `platform.machine()`: x86_64, aarch64, …
    machine: str
    #: The glibc version ("2.36"); None on a host with another C library (musl).
    glibc: str | None


class TargetsRecord(TypedDict):
    """The hosts an artifact serves, as its manifest lists them (`release.artifacts.targets`)."""

    pythons: list[str]
    machines: list[str]
    glibc: str


class Target(TypedDict):
    """Which environment a request is about (every request carries one)."""

    env: str
    base_dir: str
    data_dir: str
    config_file: str
    unit: str
    port: int


class HolderRecord(TypedDict):
    """Who holds an environment's lock (`.lock/holder.json`)."""

    holder: str
    host: str
    pid: int
    started_at: str
    command: str
    token: str


class IncompleteLock(TypedDict):
    """A lock whose holder file was never written (its taker was killed in between)."""

    holder: str
    incomplete: Literal[True]


LockHolder = HolderRecord | IncompleteLock


class ReleaseEntry(TypedDict):
    """One directory under releases/."""

    sha: str
    complete: bool
    version: NotRequired[str | None]
    tag: NotRequired[str | None]
    built_at: NotRequired[str | None]
    data_contract: NotRequired[DataContract | None]
    #: The Python (X.Y) its venv was built with (None: no venv).
    python: NotRequired[str | None]
    #: Whether that interpreter is still the one its venv runs (not so after the host's
    #: python3 was upgraded under a venv that named python3, or the old version removed).
    runnable: NotRequired[bool]


class Health(TypedDict, total=False):
    """/health and /health/ready as the host sees them (empty unless probed)."""

    status: int
    body: Any
    error: str
    ready_status: int
    ready_body: Any


class Gate(TypedDict):
    """How a health gate ended."""

    healthy: bool
    seconds: float
    reason: NotRequired[str]
    body: NotRequired[Any]
    restart_seconds: NotRequired[float]
    changes: NotRequired[list[str]]
    #: How the release was put in, for the operator: handed the socket over, or restarted (why).
    how: NotRequired[str]
    #: A hand-over that failed before the switch: the running release serves on, never stopped.
    serving_on: NotRequired[bool]


# -- requests and answers ------------------------------------------------------------------------
class StateRequest(TypedDict, total=False):
    probe: bool
    #: Also scan the event log for the schema versions it holds (a rollback's check).
    events: bool
    #: Also count the events in the log (cheap: lines, not parsed).
    count_events: bool
    #: Also the current release's requirements.lock and the env's unit files (a plan's diff).
    details: bool


class StateAnswer(TypedDict):
    releases: list[ReleaseEntry]
    partials: list[str]
    current: str | None
    previous: str | None
    lock: LockHolder | None
    unit: dict[str, str]
    health: Health
    setup: dict[str, bool]
    log: list[LogRecord]
    event_versions: NotRequired[dict[str, EventVersion]]
    event_count: NotRequired[int]
    #: Projections schemas whose read model is on disk.
    read_models: list[int]
    current_lock: NotRequired[str | None]
    unit_files: NotRequired[dict[str, str]]
    #: The settings recorded when the env was set up (None on hosts set up before records).
    host_settings: NotRequired[dict[str, str] | None]
    #: The interpreter releases run on (what the plan checks an artifact's targets against).
    platform: NotRequired[HostPlatform]


class LockRequest(TypedDict):
    holder: HolderRecord
    replace_token: NotRequired[str | None]


class LockAnswer(TypedDict):
    acquired: bool
    holder: LockHolder | None
    not_set_up: NotRequired[bool]
    state: NotRequired[StateAnswer]


class UnlockRequest(TypedDict, total=False):
    token: str
    force: bool


class UnlockAnswer(TypedDict):
    released: bool
    holder: NotRequired[LockHolder]


class PrepareRequest(TypedDict):
    sha: str


class PrepareAnswer(TypedDict):
    complete: bool
    removed: list[str]
    donor: str | None
    donor_sums: dict[str, str]


class InstallRequest(TypedDict):
    sha: str
    archive: str
    donor: str | None
    reuse: list[str]
    #: Wheels of the artifact that were not sent because this host cannot install them.
    absent: NotRequired[list[str]]


class InstallAnswer(TypedDict):
    timings: dict[str, float]
    version: str | None


class RestartRequest(TypedDict):
    sha: str
    version: str | None
    timeout: float
    units: dict[str, str]
    #: Recorded as the host's settings once the units are installed (the operator has checked
    #: they equal the recorded ones, or was told to apply them).
    settings: NotRequired[dict[str, str]]


class ActivateRequest(RestartRequest):
    previous: str | None
    #: The operator's reason for a rollback to a release that cannot read the whole log.
    forced: NotRequired[str]


class ActivateAnswer(Gate):
    before: str | None


class GoLiveRequest(ActivateRequest):
    back_to: str | None
    back_version: str | None
    back_previous: str | None
    #: The operation's closing record; the host completes it with the outcome and writes it.
    finish: LogRecord
    #: Seconds to keep watching a release after its health gate passed (0: no watch).
    watch: NotRequired[float]


class ActivationIntent(TypedDict):
    """What a host reboot mid-activation needs to undo it (`recovery`)."""

    boot_id: str  # an intent of an earlier boot was cut short
    sha: str
    before: str | None  # `current` and `previous` before the switch
    before_previous: str | None
    finish: LogRecord  # the operation's closing record, as the activation would complete it
    #: An activation in phases (an env of several hosts): where it stands (`agent/phased.py`).
    staged: NotRequired[Staged]


class Staged(TypedDict):
    """A phased activation between its requests: what the next one needs to go on or undo."""

    #: ready: not switched yet (a held successor, or a restart to come); switched: put in and
    #: through its gate and watch; back: undone on this host already (its gate failed).
    phase: Literal["ready", "switched", "back"]
    request: ReadyRequest
    #: The held hand-over (None: the release is restarted in at the switch, and why).
    attempt: str | None
    running: str | None
    restart_why: str | None
    changes: list[str]


class ReadyRequest(GoLiveRequest):
    #: Seconds a successor ready beside the running release waits to be told to switch.
    hold: float


class ReadyAnswer(TypedDict):
    ready: bool
    reason: str | None
    seconds: float
    #: How the release goes in at the switch: handed the socket, or restarted (and why).
    how: str
    changes: list[str]
    journal: list[str]


class SettleRequest(TypedDict):
    #: True: every host is healthy on the release, keep it; False: go back to the one before.
    keep: bool
    #: The env's outcome (the finish record's), and why when it is not a success.
    outcome: str
    reason: str | None


class SettleAnswer(TypedDict):
    outcome: str
    reason: str | None
    #: Whether the host serves, healthy, the release it ends on.
    healthy: bool


class GoLiveAnswer(TypedDict):
    healthy: bool
    outcome: str
    reason: str | None
    journal: list[str]
    seconds: float | None
    before: str | None
    changes: list[str]
    how: NotRequired[str]


class Empty(TypedDict):
    pass


class StopAnswer(TypedDict):
    unit: dict[str, str]


class JournalRequest(TypedDict):
    lines: int


class JournalAnswer(TypedDict):
    lines: list[str]


class PruneRequest(TypedDict):
    keep: int
    #: Never removed, besides current and previous (the release just deployed).
    protect: list[str]


class PruneAnswer(TypedDict):
    removed: list[str]
    #: Read models no kept release uses any more.
    read_models: NotRequired[list[str]]


class MigrateRequest(TypedDict):
    sha: str
    #: Seconds the build should take (events at the measured rate): its progress counts to it.
    estimate: NotRequired[float]


class MigrateAnswer(TypedDict):
    schema: int
    path: str
    seconds: float
    output: str


class SetupRequest(TypedDict):
    config_upload: str
    units: dict[str, str]
    settings: NotRequired[dict[str, str]]


class SetupAnswer(TypedDict):
    done: list[str]


class BackupRequest(TypedDict):
    keep_backups: int


class BackupAnswer(TypedDict):
    id: str
    path: str
    event_count: int
    bytes: int
    files: list[str]
    removed: list[str]


class BackupEntry(TypedDict):
    id: str
    path: str
    created_at: str | None
    event_count: int | None
    release: str | None


class BackupsAnswer(TypedDict):
    root: str
    backups: list[BackupEntry]


class RestoreRequest(TypedDict):
    backup_id: str
    source_env: str
    source_config_file: str
    timeout: float


class RestoreAnswer(Gate):
    backup: str
    from_env: str
    event_count: int
    kept: list[str]
    rebuilt: str


# -- commands ----------------------------------------------------------------------------------
Req = TypeVar("Req")
Ans = TypeVar("Ans")


#: What a build may take (a venv from a new lock, a read model of a long log), and what a
#: command that only reads or flips a link may (a host that takes longer is hung).
SLOW = 600.0
QUICK = 60.0


@dataclass(frozen=True)
class Request(Generic[Ans]):
    """A request ready to send, typed by the answer it gets."""

    command: str
    body: Any
    #: The longest the operator waits for the answer beyond the request's own `timeout`.
    limit: float = SLOW


@dataclass(frozen=True)
class Command(Generic[Req, Ans]):
    """A command the agent serves, typed by its request and answer: `STATE({"probe": True})`
    is a request mypy has checked, whose answer it knows."""

    name: str
    limit: float = SLOW

    def __call__(self, request: Req) -> Request[Ans]:
        return Request(self.name, request, self.limit)


STATE: Command[StateRequest, StateAnswer] = Command("state", QUICK)
LOCK: Command[LockRequest, LockAnswer] = Command("lock", QUICK)
UNLOCK: Command[UnlockRequest, UnlockAnswer] = Command("unlock", QUICK)
PREPARE: Command[PrepareRequest, PrepareAnswer] = Command("prepare", QUICK)
INSTALL: Command[InstallRequest, InstallAnswer] = Command("install")
RESTART: Command[RestartRequest, Gate] = Command("restart")
ACTIVATE: Command[ActivateRequest, ActivateAnswer] = Command("activate")
GO_LIVE: Command[GoLiveRequest, GoLiveAnswer] = Command("go_live")
STOP: Command[Empty, StopAnswer] = Command("stop")
JOURNAL: Command[JournalRequest, JournalAnswer] = Command("journal", QUICK)
PRUNE: Command[PruneRequest, PruneAnswer] = Command("prune", QUICK)
MIGRATE: Command[MigrateRequest, MigrateAnswer] = Command("migrate")
CUT_WATCH: Command[Empty, Empty] = Command("cut_watch", QUICK)
#: The phases of going live on an env of several hosts (`agent/phased.py`).
GO_READY: Command[ReadyRequest, ReadyAnswer] = Command("go_ready", QUICK)
GO_SWITCH: Command[Empty, GoLiveAnswer] = Command("go_switch")
GO_SETTLE: Command[SettleRequest, SettleAnswer] = Command("go_settle")
SETUP: Command[SetupRequest, SetupAnswer] = Command("setup")
BACKUP: Command[BackupRequest, BackupAnswer] = Command("backup")
BACKUPS: Command[Empty, BackupsAnswer] = Command("backups", QUICK)
RESTORE: Command[RestoreRequest, RestoreAnswer] = Command("restore")


# -- the wire ------------------------------------------------------------------------------------
class Message(TypedDict):
    """One request line."""

    command: str
    target: Target
    request: Any
    #: Appended to the deploy log before the command runs (an operation's last records).
    log_before: NotRequired[list[LogRecord]]
    #: Completed with the command's outcome and appended to the deploy log after it.
    record: NotRequired[LogRecord]


class Answer(TypedDict):
    """One answer line: `result` when ok, else `error` (one line for the operator)."""

    ok: bool
    result: NotRequired[Any]
    error: NotRequired[str]


class Progress(TypedDict):
    """How far a long step has got: the agent may send `{"progress": …}` lines before an answer."""

    step: str
    done: float
    total: float


#: The agent's first line, before any request: proves the connection and the interpreter.
class Hello(TypedDict):
    agent: int
    platform: NotRequired[HostPlatform]

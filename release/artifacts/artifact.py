"""The release artifact: wheel, lock, wheelhouse, manifest and SHA256SUMS for one commit.

Built from a clean export of the commit (never the work tree) with SOURCE_DATE_EPOCH set to the
commit time, so building the same commit twice gives the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from packaging.version import Version

from release.agent import checksums
from release.agent.checksums import sha256_file
from release.agent.contract import LEGACY
from release.agent.errors import MalformedSums
from release.agent.protocol import MANIFEST, SUMS, DataContract, TargetsRecord
from release.artifacts import wheelhouse
from release.artifacts.contract import read_contract
from release.artifacts.git import Git
from release.artifacts.targets import LEGACY as LEGACY_TARGETS
from release.artifacts.targets import LEGACY_PLATFORM, Targets, read_targets
from release.artifacts.version import version_of_commit
from release.artifacts.wheelhouse import run_step
from release.errors import ArtifactError, BuildError, ChecksumMismatch

LOCK = "requirements.lock"
WHEELHOUSE = "wheelhouse"
TOOLS = "tools"
MANIFEST_SCHEMA = 1
PACKAGE = "helionyx"


@dataclass(frozen=True)
class FileEntry:
    """One file of an artifact."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What an artifact is and what it holds."""

    schema_version: int
    name: str
    version: str
    tag: str | None
    commit: str
    built_at: str
    python_requires: str
    platform: str
    files: tuple[FileEntry, ...]
    #: What the release reads and writes; None in artifacts built before contracts existed.
    data_contract: DataContract | None = None
    #: The hosts its wheelhouse serves; None in artifacts built before targets were declared.
    targets: TargetsRecord | None = None

    @property
    def wheel(self) -> str:
        """Path of the service wheel inside the artifact."""
        return next(f.path for f in self.files if "/" not in f.path and f.path.endswith(".whl"))

    @property
    def size(self) -> int:
        """Total bytes of the listed files."""
        return sum(f.size for f in self.files)

    @property
    def is_release(self) -> bool:
        """Whether this was built from a release tag (not a dev build)."""
        return self.tag is not None

    def to_json(self) -> str:
        """Stable JSON: sorted keys, files sorted by path."""
        data = asdict(self)
        data["files"] = [asdict(f) for f in sorted(self.files, key=lambda f: f.path)]
        for optional in ("data_contract", "targets"):
            if data[optional] is None:
                del data[optional]  # an older artifact's bytes stay what they were
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse manifest.json (text or UTF-8 bytes), raising ArtifactError when it is not one."""
        try:
            data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
        except UnicodeDecodeError:
            raise ArtifactError(f"{MANIFEST} is not UTF-8 text") from None
        except ValueError as exc:
            raise ArtifactError(f"{MANIFEST} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ArtifactError(f"{MANIFEST} holds JSON {_json_kind(data)}, not an object")
        missing = sorted(k for k in _MANIFEST_FIELDS if k not in data)
        if missing:
            raise ArtifactError(f"{MANIFEST} has no {', '.join(missing)}")
        unknown = sorted(set(data) - set(_MANIFEST_FIELDS) - {"data_contract", "targets"})
        if unknown:
            raise ArtifactError(f"{MANIFEST} has fields it should not: {', '.join(unknown)}")
        for key, kinds in _MANIFEST_FIELDS.items():
            if not isinstance(data[key], kinds) or isinstance(data[key], bool):
                raise ArtifactError(f"{MANIFEST} field {key} is {_json_kind(data[key])}")
        if data["schema_version"] != MANIFEST_SCHEMA:
            raise ArtifactError(
                f"{MANIFEST} has schema version {data['schema_version']}, expected "
                f"{MANIFEST_SCHEMA}",
                hint="use the release tooling of the same generation as the artifact",
            )
        _check_optional(data)
        entries = []
        for entry in data["files"]:
            if not (
                isinstance(entry, dict)
                and set(entry) == {"path", "size", "sha256"}
                and isinstance(entry["path"], str)
                and isinstance(entry["size"], int)
                and isinstance(entry["sha256"], str)
            ):
                raise ArtifactError(f"{MANIFEST} lists a file that is not path, size and sha256")
            entries.append(FileEntry(entry["path"], entry["size"], entry["sha256"]))
        fields = {k: v for k, v in data.items() if k != "files"}
        return cls(files=tuple(entries), **fields)


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "name": str,
    "version": str,
    "tag": (str, type(None)),
    "commit": str,
    "built_at": str,
    "python_requires": str,
    "platform": str,
    "files": list,
}


def _check_optional(data: dict[str, object]) -> None:
    """The fields later manifests added: objects when present, and targets that make sense."""
    for optional in ("data_contract", "targets"):
        if not isinstance(data.get(optional), dict | None):
            raise ArtifactError(f"{MANIFEST} field {optional} is not an object")
    if isinstance(data.get("targets"), dict):
        Targets.from_record(cast(TargetsRecord, data["targets"]), where=f"{MANIFEST} targets")


def _json_kind(value: object) -> str:
    """How JSON would name a value's type, for a message."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "an object"})
    return names.get(type(value), type(value).__name__)


def targets_of(manifest: Manifest) -> Targets:
    """The hosts an artifact serves (one built before targets were declared: Debian 12's)."""
    if manifest.targets is None:
        return LEGACY_TARGETS
    return Targets.from_record(manifest.targets, where=f"{MANIFEST} targets")


def contract_of(manifest: Manifest) -> DataContract:
    """The release's data contract (an artifact without one counts as the legacy contract)."""
    return manifest.data_contract if manifest.data_contract is not None else LEGACY


@dataclass(frozen=True)
class Artifact:
    """A complete artifact in a directory."""

    directory: Path
    manifest: Manifest

    @property
    def version(self) -> str:
        """Its version."""
        return self.manifest.version

    @property
    def commit(self) -> str:
        """Its commit SHA."""
        return self.manifest.commit


def artifact_files(directory: Path) -> list[str]:
    """Relative paths of every file under `directory` except SHA256SUMS, sorted."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != SUMS
    )


# -- building ------------------------------------------------------------------------------
def build(
    git: Git,
    commit: str,
    store_root: Path,
    *,
    python: str = sys.executable,
    wheel_cache: Path | None = None,
) -> Artifact:
    """Build the artifact for `commit` into `store_root/<version>/`; reuse an identical one.
    Wheelhouses are kept in `wheel_cache` (`<store_root>/../cache/wheels` unless given)."""
    version, tag = version_of_commit(git, commit)
    final = store_root / str(version)
    if final.exists():
        existing = verify(final)
        if existing.manifest.commit != commit:
            raise ArtifactError(
                f"{final} holds {existing.manifest.commit[:12]}, not {commit[:12]}",
                hint="remove the stale directory or pick another store",
                release=str(version),
            )
        return existing
    store_root.mkdir(parents=True, exist_ok=True)
    epoch = git.commit_time(commit)
    with tempfile.TemporaryDirectory(prefix="helionyx-build-") as tmp:
        source = Path(tmp) / "source"
        git.export(commit, source)
        _stamp_version(source, version, commit)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=store_root))
        staging.chmod(0o755)  # mkdtemp makes 0700; artifacts are world-readable
        try:
            wheel = _build_wheel(source, staging, epoch, python)
            _twine_check(wheel, python)
            _check_wheel_contents(wheel)
            shutil.copyfile(_runtime_lock(source, commit), staging / LOCK)
            declared = read_targets(source)
            targets = declared or LEGACY_TARGETS
            cache = wheel_cache or store_root.parent / "cache" / "wheels"
            wheelhouse.fill(staging / LOCK, staging / WHEELHOUSE, python, targets, cache)
            tools_lock = source / "requirements" / "tools.txt"
            if tools_lock.is_file():
                # Tools (uv) run on the machine, whatever its Python.
                machines_only = Targets(targets.pythons[:1], targets.machines, targets.glibc)
                wheelhouse.fill(tools_lock, staging / TOOLS, python, machines_only, cache)
            manifest = Manifest(
                schema_version=MANIFEST_SCHEMA,
                name=PACKAGE,
                version=str(version),
                tag=tag,
                commit=commit,
                built_at=datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z"),
                python_requires=_requires_python(wheel),
                platform=declared.platform if declared else LEGACY_PLATFORM,
                files=tuple(_entries(staging, artifact_files(staging))),
                data_contract=read_contract(source),
                targets=declared.record() if declared else None,
            )
            write_manifest(staging, manifest)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Artifact(final, manifest)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write manifest.json and then SHA256SUMS over every file."""
    (directory / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    checksums.write(directory, artifact_files(directory))


def _entries(directory: Path, paths: Iterable[str]) -> Iterable[FileEntry]:
    for path in paths:
        file = directory / path
        yield FileEntry(path, file.stat().st_size, sha256_file(file))


def _runtime_lock(source: Path, commit: str) -> Path:
    lock = source / "requirements" / "runtime.txt"
    if not lock.is_file():
        raise BuildError(f"commit {commit[:12]} has no requirements/runtime.txt")
    return lock


def _stamp_version(source: Path, version: Version, commit: str) -> None:
    target = source / "src" / PACKAGE / "_version.py"
    target.write_text(
        '"""Version and commit of this build; written by the release tool."""\n\n'
        f'__version__ = "{version}"\n__commit__ = "{commit}"\n',
        encoding="utf-8",
    )


def _build_wheel(source: Path, out: Path, epoch: int, python: str) -> Path:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0"}
    # --no-isolation: the backend (hatchling) comes pinned from the dev lock, so a rebuild
    # uses the same backend version and needs no index.
    run_step(
        [python, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        "building the wheel",
        env,
    )
    wheels = list(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel, found {len(wheels)}")
    return wheels[0]


def _twine_check(wheel: Path, python: str) -> None:
    run_step([python, "-m", "twine", "check", "--strict", str(wheel)], "twine check")


def _check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    stray = [
        n
        for n in names
        if not (n.startswith((f"{PACKAGE}/", f"{PACKAGE}-")))
        or "__pycache__" in n
        or n.endswith(".pyc")
    ]
    if stray:
        raise BuildError(f"the wheel holds files outside the service package: {stray[:3]}")


def _requires_python(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(metadata).decode().splitlines():
            if line.startswith("Requires-Python:"):
                return line.split(":", 1)[1].strip()
    return ""


# -- verifying -----------------------------------------------------------------------------
def read_sums(directory: Path) -> dict[str, str]:
    """Parse SHA256SUMS into {path: sha256}."""
    if not (directory / SUMS).is_file():
        raise ArtifactError(f"{directory} has no {SUMS}", hint="the artifact is incomplete")
    try:
        return checksums.read(directory)
    except MalformedSums as exc:
        raise ArtifactError(str(exc), hint="re-download it") from None


def require_commit(manifest: Manifest, expected: str) -> None:
    """Refuse an artifact built from another commit than its tag names."""
    if manifest.commit != expected:
        raise ArtifactError(
            f"artifact {manifest.version} was built from {manifest.commit[:12]}, but its tag "
            f"points at {expected[:12]}",
            hint="the tag was moved or the artifact is not this release's; rebuild from the tag",
            release=manifest.version,
        )


def verify(directory: Path) -> Artifact:
    """Check every file against SHA256SUMS and the manifest; name the first file that differs."""
    if not directory.is_dir():
        raise ArtifactError(f"no artifact at {directory}")
    sums = read_sums(directory)
    present = artifact_files(directory)
    if MANIFEST not in present:
        raise ArtifactError(f"{directory} has no {MANIFEST}", hint="the artifact is incomplete")
    manifest_hash = sha256_file(directory / MANIFEST)
    manifest_ok = sums.get(MANIFEST) == manifest_hash
    manifest = Manifest.from_json((directory / MANIFEST).read_text(encoding="utf-8"))
    listed = {entry.path: entry for entry in manifest.files}
    for path in present:
        if path != MANIFEST and path not in listed:
            raise ArtifactError(f"unexpected file {path} in the artifact", release=manifest.version)
    for entry in manifest.files:
        file = directory / entry.path
        if not file.is_file():
            raise ArtifactError(f"{entry.path} is missing", release=manifest.version)
        actual = sha256_file(file)
        blamed = _blame(entry, actual, sums.get(entry.path))
        if blamed is not None:
            expected = entry.sha256 if blamed == entry.path else sums.get(entry.path, "(missing)")
            raise ChecksumMismatch(blamed, expected, actual, release=manifest.version)
        if file.stat().st_size != entry.size:
            raise ArtifactError(f"size mismatch for {entry.path}", release=manifest.version)
    extra = set(sums) - set(listed) - {MANIFEST}
    if extra:
        raise ChecksumMismatch(SUMS, "(no such file)", sorted(extra)[0], release=manifest.version)
    if not manifest_ok:
        raise ChecksumMismatch(
            f"{MANIFEST} (or its line in {SUMS})",
            sums.get(MANIFEST, "(missing)"),
            manifest_hash,
            release=manifest.version,
        )
    return Artifact(directory, manifest)


def _blame(entry: FileEntry, actual: str, summed: str | None) -> str | None:
    """Which file was altered, judged by which two of the three records still agree."""
    if actual == entry.sha256 == summed:
        return None
    if actual == entry.sha256:
        return SUMS
    if actual == summed:
        return MANIFEST
    return entry.path

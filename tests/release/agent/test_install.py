"""Building a release on the host: every file checked, nothing half-made ever complete."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from release.agent.protocol import INSTALL, PREPARE, InstallRequest
from tests.release.agent.agentkit import ask, send, target
from tests.release.inprocess import FakeSystem, pretend_host


@pytest.fixture
def system(tmp_path: Path) -> FakeSystem:
    return FakeSystem(tmp_path / "root")


def upload(tmp_path: Path, system: FakeSystem, version: str, **changes: bytes) -> tuple[str, str]:
    """An artifact of the pretend store, tarred into releases/ as the operator uploads it."""
    store = pretend_host(tmp_path / version)
    sha = store.artifact(version)
    directory = store.store.root / version
    releases = Path(target(system.root)["base_dir"]) / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    archive = releases / f".{sha}.upload"
    with tarfile.open(archive, "w") as bundle:
        for path in sorted(directory.rglob("*")):
            name = path.relative_to(directory).as_posix()
            if path.is_file():
                data = changes.get(name, path.read_bytes())
                info = tarfile.TarInfo(name)
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
    return sha, str(archive)


def install(sha: str, archive: str, **changes: object) -> InstallRequest:
    request: InstallRequest = {"sha": sha, "archive": archive, "donor": None, "reuse": []}
    request.update(changes)  # type: ignore[typeddict-item]
    return request


def releases(system: FakeSystem) -> Path:
    return Path(target(system.root)["base_dir"]) / "releases"


def test_an_upload_becomes_a_complete_release(tmp_path: Path, system: FakeSystem) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    answer = send(system, INSTALL(install(sha, archive)))
    assert answer["ok"], answer
    assert (releases(system) / sha / "manifest.json").is_file()
    assert not Path(archive).exists(), "the upload is consumed"
    assert set(answer["result"]["timings"]) >= {"unpack", "venv", "smoke_check"}


def test_a_file_altered_in_transit_is_refused_and_leaves_nothing(
    tmp_path: Path, system: FakeSystem
) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0", **{"requirements.lock": b"evil==6.6.6\n"})
    answer = send(system, INSTALL(install(sha, archive)))
    assert answer == {"ok": False, "error": "checksum mismatch for requirements.lock after upload"}
    assert list(releases(system).iterdir()) == [], "no partial, no upload, no release"


def test_a_manifest_for_another_commit_is_refused(tmp_path: Path, system: FakeSystem) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    answer = send(system, INSTALL(install("f" * 40, archive)))
    assert answer["ok"] is False and f"is for {sha}" in str(answer.get("error"))
    assert not (releases(system) / ("f" * 40)).exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd"])
def test_reusing_a_path_outside_the_release_is_refused(
    tmp_path: Path, system: FakeSystem, name: str
) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    (releases(system) / "donor").mkdir()
    answer = send(system, INSTALL(install(sha, archive, donor="donor", reuse=[name])))
    assert answer["ok"] is False and "not a relative path" in str(answer.get("error"))


def test_a_failing_smoke_check_leaves_no_release(tmp_path: Path, system: FakeSystem) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    system.unconfigurable.add(sha)
    answer = send(system, INSTALL(install(sha, archive)))
    assert answer["ok"] is False and "smoke check" in str(answer.get("error"))
    assert list(releases(system).iterdir()) == []


def test_prepare_clears_leftovers_and_offers_current_as_donor(
    tmp_path: Path, system: FakeSystem
) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    send(system, INSTALL(install(sha, archive)))
    base = releases(system).parent
    (base / "current").symlink_to(f"releases/{sha}")
    (releases(system) / ".dead.partial").mkdir()
    (base / ".current.999").symlink_to("releases/nothing")
    answer = ask(system, PREPARE({"sha": "e" * 40}))
    assert sorted(answer["removed"]) == [".current.999", ".dead.partial"]
    assert answer["donor"] == sha and not answer["complete"]
    assert answer["donor_sums"]["requirements.lock"]
    assert ask(system, PREPARE({"sha": sha}))["complete"] is True


def test_files_named_for_reuse_are_linked_from_the_donor(
    tmp_path: Path, system: FakeSystem
) -> None:
    first, archive = upload(tmp_path, system, "0.1.0")
    send(system, INSTALL(install(first, archive)))
    second, archive = upload(tmp_path, system, "0.2.0")
    # Sent without the lock file: the host links it from the donor and checks it all the same.
    with tarfile.open(archive) as bundle:
        members = [(m, bundle.extractfile(m)) for m in bundle.getmembers()]
        kept = [(m, f.read() if f else b"") for m, f in members if m.name != "requirements.lock"]
    with tarfile.open(archive, "w") as bundle:
        for member, data in kept:
            bundle.addfile(member, io.BytesIO(data))
    request = install(second, archive, donor=first, reuse=["requirements.lock"])
    assert send(system, INSTALL(request))["ok"]
    lock = releases(system) / second / "requirements.lock"
    assert lock.samefile(releases(system) / first / "requirements.lock")
    assert json.loads((releases(system) / second / "manifest.json").read_text())["commit"] == second


def test_only_wheels_may_be_left_out_of_an_upload(tmp_path: Path, system: FakeSystem) -> None:
    sha, archive = upload(tmp_path, system, "0.1.0")
    answer = send(system, INSTALL(install(sha, archive, absent=["requirements.lock"])))
    assert not answer["ok"]
    assert answer["error"] == "only wheels may be left out of an upload, not requirements.lock"
    assert not (releases(system) / sha).exists()


def _without(archive: str, name: str) -> None:
    """The upload as an operator sends it to a host that cannot use `name`."""
    with tarfile.open(archive) as bundle:
        kept = [(m, bundle.extractfile(m)) for m in bundle.getmembers() if m.name != name]
        data = [(member, handle.read() if handle else b"") for member, handle in kept]
    with tarfile.open(archive, "w") as bundle:
        for member, content in data:
            bundle.addfile(member, io.BytesIO(content))


def test_a_wheel_left_out_on_purpose_is_not_a_missing_file(
    tmp_path: Path, system: FakeSystem
) -> None:
    wheel = "wheelhouse/fastapi-1.0-py3-none-any.whl"
    sha, archive = upload(tmp_path, system, "0.1.0")
    _without(archive, wheel)
    missing = send(system, INSTALL(install(sha, archive)))
    assert missing["error"] == f"checksum mismatch for {wheel} after upload"

    sha, archive = upload(tmp_path / "again", system, "0.1.0")
    _without(archive, wheel)
    done = send(system, INSTALL(install(sha, archive, absent=[wheel])))
    assert done["ok"], done
    assert not (releases(system) / sha / wheel).exists()
    prepared = ask(system, PREPARE({"sha": "f" * 40}))
    assert prepared["donor"] == sha and wheel not in prepared["donor_sums"], (
        "a donor offers only the files it holds"
    )

"""Building real artifacts: real git, real `python -m build`, real pip downloads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from release.agent.protocol import MANIFEST, SUMS
from release.artifacts.artifact import Manifest, read_sums, verify
from tests.release.conftest import Released, git, release_cli

pytestmark = pytest.mark.build


def test_make_release_commits_tags_and_builds_the_artifact(released: Released) -> None:
    repo = released.repo
    assert git(repo, "log", "-1", "--format=%s") == "chore(release): v0.1.0"
    assert git(repo, "cat-file", "-t", "v0.1.0") == "tag", "the tag is annotated"
    assert git(repo, "rev-parse", "v0.1.0^{commit}") == released.commit
    changelog = (repo / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [0.1.0] - " in changelog
    assert git(repo, "status", "--porcelain") == ""

    manifest = Manifest.from_json((released.artifact / MANIFEST).read_text())
    assert manifest.version == "0.1.0"
    assert manifest.tag == "v0.1.0"
    assert manifest.commit == released.commit
    assert manifest.python_requires == ">=3.11"
    assert manifest.platform == "cp311,cp312,cp313-manylinux_2_31-x86_64,aarch64"
    assert manifest.targets == {
        "pythons": ["3.11", "3.12", "3.13"],
        "machines": ["x86_64", "aarch64"],
        "glibc": "2.31",
    }
    assert manifest.wheel == "helionyx-0.1.0-py3-none-any.whl"
    assert set(read_sums(released.artifact)) == {f.path for f in manifest.files} | {MANIFEST}


def test_the_wheel_holds_only_the_service_and_knows_its_commit(released: Released) -> None:
    wheel = released.artifact / "helionyx-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        version_py = archive.read("helionyx/_version.py").decode()
    assert all(n.startswith(("helionyx/", "helionyx-0.1.0.dist-info/")) for n in names)
    assert not [n for n in names if "test" in n or "release/" in n or n.endswith(".pyc")]
    assert '__version__ = "0.1.0"' in version_py
    assert f'__commit__ = "{released.commit}"' in version_py


def test_the_lock_is_hash_pinned_and_names_no_machine_paths(released: Released) -> None:
    lock = (released.artifact / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if "==" in line]
    assert any(p.startswith("fastapi==") for p in pins)
    assert lock.count("--hash=sha256:") >= len(pins)
    for forbidden in ("--index-url", "--extra-index-url", "--find-links", "/opt/", "file://"):
        assert forbidden not in lock


def test_the_wheelhouse_has_every_locked_package_for_every_target(released: Released) -> None:
    lock = (released.artifact / "requirements.lock").read_text()
    pinned = {
        line.split("==")[0].lower().replace("-", "_")
        for line in lock.splitlines()
        if "==" in line and not line.startswith("#")
    }
    wheels = [p.name for p in (released.artifact / "wheelhouse").iterdir()]
    assert {w.split("-")[0].lower() for w in wheels} == pinned
    core = sorted(w for w in wheels if w.startswith("pydantic_core-"))
    assert [w.split("-")[2] for w in core] == ["cp311"] * 2 + ["cp312"] * 2 + ["cp313"] * 2
    assert sum("x86_64" in w for w in core) == sum("aarch64" in w for w in core) == 3
    for wheel in core:  # nothing newer than Ubuntu 20.04's glibc 2.31
        minors = [int(tag.split("_")[2]) for tag in wheel.split("-")[4].split(".") if "_2_" in tag]
        assert minors and max(minors) <= 31, wheel
    tools = sorted(p.name for p in (released.artifact / "tools").iterdir())
    assert [t.split("-")[0] for t in tools] == ["uv", "uv"]
    assert any("aarch64" in t for t in tools) and any("x86_64" in t for t in tools)


def _resolve(
    artifact: Path, wheelhouse: Path, machine: str, python: str, scratch: Path
) -> CompletedProcess[str]:
    """Resolve the artifact's lock against a wheelhouse for a host this machine cannot boot,
    offline, with the hashes checked, as the host's install would."""
    uv = Path(sys.executable).parent / "uv"
    return subprocess.run(
        [
            str(uv), "pip", "install", "--dry-run", "--offline", "--no-index", "--no-cache",
            "--find-links", str(wheelhouse), "--require-hashes",
            "-r", str(artifact / "requirements.lock"),
            "--python-platform", f"{machine}-manylinux_2_31", "--python-version", python,
            "--target", str(scratch / "target"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_the_lock_resolves_offline_from_the_wheelhouse_for_every_target(
    released: Released, machine: str, python: str, tmp_path: Path
) -> None:
    wheelhouse = released.artifact / "wheelhouse"
    resolved = _resolve(released.artifact, wheelhouse, machine, python, tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    assert "pydantic-core==2.50.4" in resolved.stderr


def test_resolving_names_the_package_whose_wheel_a_target_lacks(
    released: Released, tmp_path: Path
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    shutil.copytree(released.artifact / "wheelhouse", wheelhouse)
    next(wheelhouse.glob("pydantic_core-*-cp312-*aarch64*.whl")).unlink()
    resolved = _resolve(released.artifact, wheelhouse, "aarch64", "3.12", tmp_path)
    assert resolved.returncode != 0
    assert "pydantic-core" in resolved.stderr and "manylinux_2_31_aarch64" in resolved.stderr


def test_building_the_same_commit_in_two_clones_is_byte_identical(
    released: Released, tmp_path: Path
) -> None:
    outputs = []
    for name in ("clone-a", "clone-b"):
        clone = tmp_path / name
        git(tmp_path, "clone", "--quiet", str(released.repo), str(clone))
        git(clone, "checkout", "--quiet", released.tag)
        result = release_cli(clone, "artifact")
        assert result.code == 0, result.stderr
        assert "built release 0.1.0" in result.stdout
        outputs.append(clone / "dist" / "releases" / "0.1.0")
    a, b = outputs
    for artifact in (a, released.artifact):
        assert (artifact / "helionyx-0.1.0-py3-none-any.whl").read_bytes() == (
            b / "helionyx-0.1.0-py3-none-any.whl"
        ).read_bytes()
        assert (artifact / MANIFEST).read_bytes() == (b / MANIFEST).read_bytes()
        assert (artifact / SUMS).read_bytes() == (b / SUMS).read_bytes()


def test_an_untagged_head_builds_a_dev_version_that_cannot_pass_for_a_release(
    released: Released, tmp_path: Path
) -> None:
    clone = tmp_path / "dev"
    git(tmp_path, "clone", "--quiet", str(released.repo), str(clone))
    git(clone, "config", "user.email", "t@example.invalid")
    git(clone, "config", "user.name", "T")
    (clone / "NOTES.txt").write_text("work in progress\n")
    git(clone, "add", "NOTES.txt")
    git(clone, "commit", "--quiet", "-m", "wip")
    sha = git(clone, "rev-parse", "HEAD")
    result = release_cli(clone, "artifact")
    assert result.code == 0, result.stderr
    version = f"0.1.1.dev1+g{sha[:12]}"
    assert f"built dev build {version} ({sha})" in result.stdout
    manifest = json.loads((clone / "dist" / "releases" / version / MANIFEST).read_text())
    assert manifest["tag"] is None and manifest["commit"] == sha


@pytest.mark.parametrize(
    "victim",
    [
        "helionyx-0.1.0-py3-none-any.whl",
        "requirements.lock",
        "wheelhouse/fastapi",
        MANIFEST,
        SUMS,
    ],
)
def test_verify_names_the_one_file_whose_byte_was_changed(
    released: Released, tmp_path: Path, victim: str
) -> None:
    copy = tmp_path / "0.1.0"
    shutil.copytree(released.artifact, copy)
    if victim.startswith("wheelhouse/"):
        target = next((copy / "wheelhouse").glob(victim.split("/")[1] + "-*.whl"))
    else:
        target = copy / victim
    data = bytearray(target.read_bytes())
    # For the text files, change a hex digit of a checksum or a value, not the structure.
    offset = data.index(b"sha256") + 20 if victim == MANIFEST else len(data) // 3
    if victim == SUMS:
        offset = 5
    data[offset] = ord("0") if data[offset] != ord("0") else ord("1")
    target.write_bytes(bytes(data))
    with pytest.raises(Exception, match="checksum mismatch") as raised:
        verify(copy)
    expected = victim if not victim.startswith("wheelhouse/") else f"wheelhouse/{target.name}"
    assert str(raised.value).startswith(f"checksum mismatch for {expected}")
    original = released.artifact / target.relative_to(copy)
    assert original.read_bytes() != target.read_bytes(), "only the copy was changed"
    verify(released.artifact)  # the original is untouched: it still verifies whole


#: pip with no index it can reach: a build that needs to download fails.
OFFLINE = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "2",
}


def test_a_build_of_the_same_lock_takes_its_wheels_from_the_cache_checked(
    released: Released, tmp_path: Path
) -> None:
    clone = tmp_path / "again"
    git(tmp_path, "clone", "--quiet", str(released.repo), str(clone))
    shutil.copytree(released.repo / "dist" / "cache", clone / "dist" / "cache")
    for number, label in enumerate(("first", "second")):
        (clone / "NOTES.txt").write_text(f"{label}\n")
        git(clone, "add", "NOTES.txt")
        git(clone, "-c", "user.name=T", "-c", "user.email=t@x.invalid", "commit", "-qm", label)
        if number == 1:  # a wheel in the cache altered: not used, so the offline build fails
            cached = next((clone / "dist" / "cache" / "wheels").glob("*/pydantic_core-*"))
            cached.write_bytes(cached.read_bytes() + b"\0")
        result = release_cli(clone, "artifact", env=OFFLINE)
        if number == 0:
            assert result.code == 0, result.stderr
            built = next(p for p in (clone / "dist" / "releases").iterdir())
            wheels = sorted(p.name for p in (built / "wheelhouse").iterdir())
            assert wheels == sorted(p.name for p in (released.artifact / "wheelhouse").iterdir())
        else:
            assert result.code != 0
            assert "downloading wheelhouse/ for CPython" in result.stderr

"""Which hosts a release can run on, decided before anything changes (issue 21): in-process,
through the CLI, against hosts with other interpreters, machines and C libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.agent.protocol import HostPlatform, TargetsRecord
from release.hosts.environments import Environment
from release.hosts.setup import fill_settings
from tests.release.cli.clikit import Cli
from tests.release.conftest import tree_listing
from tests.release.inprocess import REPO, TOKEN, Notes, PretendHost

#: What pyproject.toml declares.
PROJECT: TargetsRecord = {
    "pythons": ["3.11", "3.12", "3.13"],
    "machines": ["x86_64", "aarch64"],
    "glibc": "2.31",
}
#: A wheelhouse like the real one: the compiled package once per target, the rest pure.
COMPILED = tuple(
    f"wheelhouse/pydantic_core-2.0-cp{py}-cp{py}-manylinux_2_17_{machine}.manylinux2014_{machine}.whl"
    for py in ("311", "312", "313")
    for machine in ("x86_64", "aarch64")
) + tuple(
    f"tools/uv-0.1-py3-none-manylinux_2_17_{machine}.manylinux2014_{machine}.whl"
    for machine in ("x86_64", "aarch64")
)


def platform(python: str = "3.12.3", machine: str = "x86_64", glibc: str | None = "2.39",
             implementation: str = "cpython") -> HostPlatform:  # fmt: skip
    return {"python": python, "implementation": implementation, "machine": machine, "glibc": glibc}


@pytest.fixture
def run(host: PretendHost, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(host, capsys)


def _deploy_args(host: PretendHost, version: str) -> list[str]:
    return ["deploy", "--env", "dev", "--version", version, "--store", f"dir:{host.store.root}"]


def test_a_host_gets_only_the_wheels_it_can_install(host: PretendHost) -> None:
    dev = host.peer("dev")
    host.set_up(dev)
    host.system.host_platform = platform("3.12.3", "aarch64", "2.39")
    first = host.artifact("1.0.0", targets=PROJECT, wheels=COMPILED)
    notes = Notes()
    host.deploy(dev, "1.0.0", notes)
    said = "\n".join(notes.lines)
    assert (
        "host: CPython 3.12.3 on aarch64 with glibc 2.39; "
        "artifact: CPython 3.11, 3.12, 3.13 on x86_64, aarch64, glibc 2.31+"
    ) in said
    assert "6 wheel(s) for other hosts left out" in said
    release = Path(dev.base_dir) / "releases" / first
    held = sorted(p.relative_to(release).as_posix() for p in release.rglob("*.whl"))
    assert held == [
        "helionyx-1.0.0-py3-none-any.whl",
        "tools/uv-0.1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "wheelhouse/fastapi-1.0-py3-none-any.whl",
        "wheelhouse/pydantic_core-2.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    ]

    # The next release links what the first holds, and still leaves out what it lacks.
    second = host.artifact("1.1.0", targets=PROJECT, wheels=COMPILED)
    notes = Notes()
    host.deploy(dev, "1.1.0", notes)
    said = "\n".join(notes.lines)
    assert f"identical file(s) linked from {first[:12]}" in said
    assert host.current(dev) == second
    assert len(list((Path(dev.base_dir) / "releases" / second).rglob("pydantic_core-*"))) == 1


@pytest.mark.parametrize(
    ("found", "named"),
    [
        (platform("3.10.12", glibc="2.35"), "CPython 3.10.12 on x86_64 with glibc 2.35"),
        (platform("3.14.0"), "CPython 3.14.0 on x86_64 with glibc 2.39"),
        (platform(machine="ppc64le"), "the host is ppc64le"),
        (platform(machine="armv7l"), "the host is armv7l"),
        (platform(glibc="2.28"), "with glibc 2.28"),
        (platform(glibc=None), "with no glibc"),
        (platform("3.11.9", implementation="pypy"), "pypy 3.11.9"),
    ],
)
def test_a_host_the_artifact_cannot_serve_is_refused_before_anything_changes(
    host: PretendHost, run: Cli, found: HostPlatform, named: str
) -> None:
    dev = host.peer("dev")
    host.set_up(dev)
    host.artifact("1.0.0", targets=PROJECT, wheels=COMPILED)
    host.system.host_platform = found
    before = tree_listing(host.root)
    for argv in (
        ["plan", "--env", "dev", "--version", "1.0.0", "--store", f"dir:{host.store.root}"],
        _deploy_args(host, "1.0.0"),
    ):
        refused = run(*argv)
        assert refused.code == 1, argv
        assert named in refused.error
        if found["python"].startswith("3.10"):
            assert "need CPython 3.11 or newer" in refused.error
            assert "1.0.0 offers CPython 3.11, 3.12, 3.13 on x86_64, aarch64" in refused.error
            assert 'set python = "python3.11"' in refused.error
        else:
            assert "cannot run on" in refused.error
            assert (
                "the artifact offers CPython 3.11, 3.12, 3.13 on x86_64, aarch64" in refused.error
            )
        assert tree_listing(host.root) == before, "nothing on the host changed"


def test_setup_host_says_what_to_install_on_a_host_no_release_can_run_on(
    host: PretendHost, run: Cli
) -> None:
    host.peer("dev")
    host.system.host_platform = platform(machine="s390x")
    settings = fill_settings(
        REPO / ".env.dev.example", host.workspace / ".env.dev", {"HELIONYX_API_TOKEN": TOKEN}
    )
    before = tree_listing(host.root)
    refused = run("setup-host", "--env", "dev", "--env-file", str(settings))
    assert refused.code == 1
    assert "releases of this project cannot run on" in refused.error
    assert "the host is s390x" in refused.error and "install one of CPython 3.11" in refused.error
    assert tree_listing(host.root) == before


def test_a_release_whose_interpreter_the_host_lost_is_refused_as_a_rollback_target(
    host: PretendHost, run: Cli, tmp_path: Path
) -> None:
    dev: Environment = host.peer("dev")
    host.set_up(dev)
    old = host.artifact("1.0.0", targets=PROJECT)
    host.artifact("1.1.0", targets=PROJECT)
    for version in ("1.0.0", "1.1.0"):
        host.deploy(dev, version)
    # As the host's python3 upgrade left it: built for 3.11, whose interpreter is gone.
    venv = Path(dev.base_dir) / "releases" / old / "venv"
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.11.2\n")
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to(tmp_path / "gone" / "python3.11")
    host.system.host_platform = platform("3.13.5")
    before = tree_listing(host.root)
    shown = run("status", "--env", "dev")
    assert "host       CPython 3.13.5 on x86_64 with glibc 2.39" in shown.out
    assert "previous (its Python 3.11 is gone: redeploy it)" in shown.out
    refused = run("rollback", "--env", "dev")
    assert refused.code == 2
    assert "1.0.0" in refused.error and "was built for Python 3.11" in refused.error
    assert "python3 is now 3.13.5" in refused.error
    assert "make deploy VERSION=1.0.0" in refused.error
    assert tree_listing(host.root) == before

    # Deploying it again builds it anew for the host's Python, in place of the stale one.
    deployed = run(*_deploy_args(host, "1.0.0"))
    assert deployed.code == 0, deployed.err
    assert "already on the host" not in deployed.out
    assert host.current(dev) == old
    assert not (venv / "pyvenv.cfg").exists(), "the venv was built again"

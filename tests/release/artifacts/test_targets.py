"""The targets rule: which wheels a build fetches, which hosts run a release, what travels."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.agent.protocol import HostPlatform
from release.artifacts.targets import LEGACY, Targets, platforms, read_targets
from release.errors import ArtifactError, BuildError

PROJECT = Targets(("3.11", "3.12", "3.13"), ("x86_64", "aarch64"), "2.31")


def host(
    python: str = "3.12.3", machine: str = "x86_64", glibc: str | None = "2.39"
) -> HostPlatform:
    return {"python": python, "implementation": "cpython", "machine": machine, "glibc": glibc}


def test_the_repository_declares_the_supported_hosts() -> None:
    assert read_targets(Path(__file__).parents[3]) == PROJECT


def test_a_tree_without_a_declaration_is_built_as_before(tmp_path: Path) -> None:
    assert read_targets(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert read_targets(tmp_path) is None
    assert Targets(("3.11",), ("x86_64",), "2.36") == LEGACY


@pytest.mark.parametrize(
    ("table", "wanted"),
    [
        ('pythons = ["3.10"]\nmachines = ["x86_64"]\nglibc = "2.31"', "is not a CPython 3.11"),
        ('pythons = []\nmachines = ["x86_64"]\nglibc = "2.31"', "pythons must be a non-empty"),
        ('pythons = ["3.12"]\nmachines = ["x86 64"]\nglibc = "2.31"', "is not a machine name"),
        ('pythons = ["3.12"]\nmachines = ["x86_64"]\nglibc = "231"', "glibc must be a version"),
        ('pythons = ["3.12"]\nmachines = ["x86_64"]\nglibc = "2.31"\nmusl = true', "takes"),
    ],
)
def test_a_declaration_that_makes_no_sense_stops_the_build(
    tmp_path: Path, table: str, wanted: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.helionyx.artifact]\n{table}\n")
    with pytest.raises(BuildError, match=wanted):
        read_targets(tmp_path)


def test_a_manifest_record_is_checked_as_strictly() -> None:
    with pytest.raises(ArtifactError, match="manifest.json targets: glibc"):
        Targets.from_record(
            {"pythons": ["3.12"], "machines": ["x86_64"], "glibc": 2.31},  # type: ignore[typeddict-item]
            where="manifest.json targets",
        )
    assert Targets.from_record(PROJECT.record(), where="x") == PROJECT


def test_pip_is_asked_for_every_manylinux_tag_up_to_the_floor() -> None:
    tags = platforms("aarch64", 31)
    assert tags[0] == "manylinux_2_31_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_32_aarch64" not in tags and "manylinux2014_aarch64" in tags
    args = PROJECT.pip_args("3.13", "aarch64")
    assert args[:2] == ["--only-binary=:all:", "--python-version"]
    assert args[args.index("--abi") : args.index("--abi") + 2] == ["--abi", "cp313"]
    assert "manylinux_2_31_aarch64" in args and "manylinux_2_31_x86_64" not in args


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (host("3.11.2", "x86_64", "2.36"), None),
        (host("3.13.5", "aarch64", "2.41"), None),
        (host("3.12.3", "x86_64", "2.31"), None),
        (host("3.10.12", "x86_64", "2.35"), "the host has CPython 3.10.12 on x86_64"),
        (host("3.14.0"), "the host has CPython 3.14.0"),
        (host(machine="i686"), "the host is i686"),
        (host(glibc="2.30"), "with glibc 2.30; the artifact offers"),
        (host(glibc=None), "with no glibc"),
    ],
)
def test_a_host_is_served_only_inside_every_target_bound(
    found: HostPlatform, reason: str | None
) -> None:
    refusal = PROJECT.refusal(found)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and reason in refusal
        assert refusal.endswith(
            "the artifact offers CPython 3.11, 3.12, 3.13 on x86_64, aarch64, glibc 2.31+"
        )


def test_only_the_wheels_a_host_can_install_travel() -> None:
    paths = [
        "helionyx-1.0-py3-none-any.whl",
        "requirements.lock",
        "wheelhouse/fastapi-1.0-py3-none-any.whl",
        "wheelhouse/pydantic_core-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "wheelhouse/pydantic_core-2.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "wheelhouse/pydantic_core-2.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "wheelhouse/orjson-2.0-cp312-cp312-manylinux_2_34_x86_64.whl",
        "wheelhouse/anyabi-1.0-cp311-abi3-manylinux_2_17_x86_64.whl",
        "tools/uv-0.1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "tools/uv-0.1-py3-none-manylinux_2_28_aarch64.whl",
    ]
    unused = PROJECT.unused(host("3.12.3", "x86_64", "2.31"), paths)
    assert unused == [
        "wheelhouse/pydantic_core-2.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "wheelhouse/pydantic_core-2.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        # Needs glibc 2.34; this host has 2.31.
        "wheelhouse/orjson-2.0-cp312-cp312-manylinux_2_34_x86_64.whl",
        "tools/uv-0.1-py3-none-manylinux_2_28_aarch64.whl",
    ]

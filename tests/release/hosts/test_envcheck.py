"""Environment files are checked strictly: one line naming the file, the key and what is
allowed, before anything is dialled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from release.cli import main
from release.errors import UsageError
from release.hosts.envcheck import RULES
from release.hosts.environments import ENV_DIR, Environment, load
from release.hosts.remote import Remote
from tests.release.inprocess import REPO

SHIPPED = (REPO / ENV_DIR / "dev.toml").read_text()


def project(tmp_path: Path, dev: str = SHIPPED) -> Path:
    """A project whose envs are the shipped ones, with dev.toml as given."""
    (tmp_path / ENV_DIR).mkdir(parents=True)
    for name in ("staging", "live"):
        (tmp_path / ENV_DIR / f"{name}.toml").write_text(
            (REPO / ENV_DIR / f"{name}.toml").read_text()
        )
    (tmp_path / ENV_DIR / "dev.toml").write_text(dev)
    return tmp_path


def with_line(key: str, value: str) -> str:
    """The shipped dev.toml with `key` set to `value` (replaced, or added at the end)."""
    pattern = re.compile(rf"^{key} = .*$", re.MULTILINE)
    if pattern.search(SHIPPED):
        return pattern.sub(f"{key} = {value}", SHIPPED)
    return SHIPPED + f"{key} = {value}\n"


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as caught:
        load(project(tmp_path, text), "dev", environ={})
    return str(caught.value)


def test_every_shipped_env_file_passes() -> None:
    for name in ("dev", "staging", "live"):
        assert load(REPO, name, environ={}).name == name


def test_an_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    message = refusal(tmp_path, SHIPPED + "wacth = 30\n")
    assert message.startswith(
        f"{ENV_DIR / 'dev.toml'}: unknown key 'wacth' (did you mean 'watch'?)"
    )
    assert "the keys an environment may set: name, host" in message


def test_an_unknown_key_nothing_like_any_other_gets_no_guess(tmp_path: Path) -> None:
    assert "unknown key 'colour';" in refusal(tmp_path, SHIPPED + 'colour = "blue"\n')


@pytest.mark.parametrize(
    ("key", "value", "wanted"),
    [
        ("health_timeout", '"20s"', "a number of seconds, above 0"),
        ("health_timeout", "0", "a number of seconds, above 0"),
        ("watch", "-1", "a number of seconds, 0 or more"),
        ("watch", "true", "a number of seconds, 0 or more"),
        ("soak", '"5m"', "a number of seconds, 0 or more"),
        ("port", "80000", "a port number, an integer from 1 to 65535"),
        ("port", '"8000"', "a port number"),
        ("ssh_port", "0", "a port number"),
        ("keep_releases", "0", "a whole number, at least 1"),
        ("keep_releases", "2.5", "a whole number, at least 1"),
        ("keep_backups", "0", "a whole number, at least 1"),
        ("allow_dev_builds", '"yes"', "true or false"),
        ("host", '""', "a non-empty string"),
        ("ssh_user", "7", "a non-empty string"),
        ("unit", '"helionyx dev"', "a systemd unit name"),
        ("base_dir", '"opt/helionyx/dev"', "an absolute path on the host"),
        ("data_dir", '"/var/lib/../tmp"', "an absolute path on the host"),
        ("config_file", "[]", "an absolute path on the host"),
        ("listen_address", '"localhost"', "an IP address to listen on"),
        ("notify", '"slack:#ops"', '"telegram:<chat id>"'),
        ("name", '"Dev Env"', "a lower-case name"),
        ("python", '"python3; rm -rf /"', "python3, python3.N or an absolute path"),
        ("python", '"python"', "python3, python3.N or an absolute path"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_is_named(
    tmp_path: Path, key: str, value: str, wanted: str
) -> None:
    message = refusal(tmp_path, with_line(key, value))
    assert message.startswith(f"{ENV_DIR / 'dev.toml'}: {key} = ")
    assert f" is not {wanted}" in message


def test_every_rule_has_a_test_above() -> None:
    tested = {"health_timeout", "watch", "soak", "port", "ssh_port", "keep_releases"}
    tested |= {"keep_backups", "allow_dev_builds", "host", "ssh_user", "unit", "base_dir"}
    tested |= {"data_dir", "config_file", "listen_address", "notify", "name", "python"}
    tested |= {"requires", "ssh_key", "known_hosts", "hosts"}  # below
    assert tested == set(RULES)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    text = re.sub(r"^port = .*\n", "", SHIPPED, flags=re.MULTILINE)
    assert refusal(tmp_path, text).startswith(f"{ENV_DIR / 'dev.toml'}: port is missing")


@pytest.mark.parametrize("other", ["dev", "qa"])
def test_requires_must_name_another_env(tmp_path: Path, other: str) -> None:
    message = refusal(tmp_path, with_line("requires", f'"{other}"'))
    assert f"requires = {other!r} is not another environment" in message
    assert "name one of: live, staging" in message


@pytest.mark.parametrize("key", ["ssh_key", "known_hosts"])
def test_optional_paths_must_be_text_when_set(tmp_path: Path, key: str) -> None:
    assert f"{key} = 1 is not a non-empty string" in refusal(tmp_path, with_line(key, "1"))


def test_a_file_named_for_another_env_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, with_line("name", '"staging"'))
    assert "name = 'staging', but the file defines 'dev'" in message


def test_a_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    assert "is not a valid environment definition" in refusal(tmp_path, SHIPPED + "watch =\n")


@pytest.mark.parametrize("port", ["ssh", "0", "70000"])
def test_a_bad_ssh_port_override_is_refused(port: str) -> None:
    with pytest.raises(UsageError, match=f"DEPLOY_SSH_PORT='{port}' is not a port number"):
        load(REPO, "dev", environ={"DEPLOY_SSH_PORT": port})


def test_a_typo_stops_status_before_anything_is_dialled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, SHIPPED + "wacth = 30\n")
    dialled: list[Environment] = []

    def never(env: Environment) -> Remote:
        dialled.append(env)
        raise AssertionError("dialled")

    for argv in (
        ["status", "--env", "dev"],
        ["status"],
        ["deploy", "--env", "dev", "--version", "1"],
    ):
        assert main(["--repo", str(root), *argv], remote_factory=never) == UsageError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unknown key 'wacth' (did you mean 'watch'?)" in err[0]
    assert dialled == []


THREE = SHIPPED.replace('host = "node1"', 'hosts = ["node1", "node2", "node3"]')


def test_an_env_may_name_several_hosts_in_the_order_locks_are_taken(tmp_path: Path) -> None:
    env = load(project(tmp_path, THREE), "dev", environ={})
    assert env.hosts == ("node1", "node2", "node3")
    assert env.host == "node1" and env.several
    on_two = env.at("node2")
    assert (on_two.host, on_two.hosts, on_two.several) == ("node2", ("node2",), False)
    assert on_two.base_dir == env.base_dir  # every host holds the same layout
    single = load(REPO, "dev", environ={})
    assert single.hosts == ("node1",) and not single.several


@pytest.mark.parametrize(
    "value", ["[]", '["node1", "node1"]', '"node1"', '["node1", ""]', '["node1", 2]']
)
def test_hosts_must_be_a_list_of_distinct_names(tmp_path: Path, value: str) -> None:
    message = refusal(tmp_path, THREE.replace('["node1", "node2", "node3"]', value))
    assert message.startswith(f"{ENV_DIR / 'dev.toml'}: hosts = ")
    assert "is not a list of distinct host names or addresses" in message


def test_host_and_hosts_are_one_or_the_other(tmp_path: Path) -> None:
    both = refusal(tmp_path / "both", THREE + 'host = "node1"\n')
    assert both.startswith(f"{ENV_DIR / 'dev.toml'}: both host and hosts are set")
    neither = refusal(tmp_path / "neither", SHIPPED.replace('host = "node1"\n', ""))
    assert neither.startswith(f"{ENV_DIR / 'dev.toml'}: host is missing")
    assert 'hosts = ["a", "b"] for several' in neither


def test_deploy_hosts_names_every_host_and_deploy_host_only_one(tmp_path: Path) -> None:
    root = project(tmp_path, THREE)
    env = load(root, "dev", environ={"DEPLOY_HOSTS": "10.0.0.1, 10.0.0.2"})
    assert env.hosts == ("10.0.0.1", "10.0.0.2") and env.host == "10.0.0.1"
    single = load(REPO, "dev", environ={"DEPLOY_HOSTS": "10.0.0.1,10.0.0.2"})
    assert single.hosts == ("10.0.0.1", "10.0.0.2")
    with pytest.raises(UsageError, match="DEPLOY_HOST names one host, but .* names 3"):
        load(root, "dev", environ={"DEPLOY_HOST": "10.0.0.1"})
    for bad in ("a,,b", "a,a", ","):
        with pytest.raises(UsageError, match="is not a list of distinct hosts"):
            load(root, "dev", environ={"DEPLOY_HOSTS": bad})
    with pytest.raises(UsageError, match="node9 is not a host of dev"):
        load(root, "dev", environ={}).at("node9")

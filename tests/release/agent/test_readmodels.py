"""The host agent and the service name read models the same way: the agent cannot import the
service (it travels alone to the host), so this test holds the two definitions together."""

from __future__ import annotations

from pathlib import Path

import pytest

from helionyx.domain import projections
from release.agent import protocol, readmodels
from release.agent.layout import Layout

CONFIGURED = ["projections.db", "state.sqlite3", "model", "read.model.db"]


@pytest.mark.parametrize("name", CONFIGURED)
@pytest.mark.parametrize("schema", [1, 2, 3, 10, 123])
def test_the_agent_names_a_schemas_read_model_as_the_service_does(name: str, schema: int) -> None:
    configured = Path("/var/lib/helionyx/dev/projections") / name
    assert readmodels.path_for(configured, schema) == projections.read_model_path(
        configured, schema
    )


@pytest.mark.parametrize("name", CONFIGURED)
def test_the_agent_finds_every_read_model_the_service_writes(tmp_path: Path, name: str) -> None:
    configured = tmp_path / "data" / "projections" / name
    config = tmp_path / "dev.env"
    config.write_text(f"PROJECTIONS_DB_PATH={configured}\n")
    layout = Layout("dev", tmp_path / "base", tmp_path / "data", config, "helionyx-dev", 8000)
    configured.parent.mkdir(parents=True)
    written = {schema: projections.read_model_path(configured, schema) for schema in (1, 2, 7)}
    for path in written.values():
        path.write_bytes(b"")
    # A forced model and the forced record are the service's too; neither is a schema's model.
    projections.forced_read_model_path(configured, 2).write_bytes(b"")
    (configured.parent / projections.FORCED_READ).write_text('{"commit": "abc"}')
    assert readmodels.present(layout) == written
    assert readmodels.forced_file(layout) == configured.parent / projections.FORCED_READ
    assert readmodels.forced_release(layout) == "abc"
    readmodels.forget_forced(layout, "def")
    assert not projections.forced_read_model_path(configured, 2).exists()
    assert not readmodels.forced_file(layout).exists()
    assert all(path.exists() for path in written.values()), "only the forced model goes"


def test_the_forced_record_has_one_name_on_both_sides() -> None:
    assert protocol.FORCED_READ == projections.FORCED_READ

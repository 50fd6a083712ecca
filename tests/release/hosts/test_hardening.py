"""The service runs sandboxed: systemd rates its unit OK, the units verify, the process is bare."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.release.deploykit import NodeHandle, Project, deploy, setup_env

pytestmark = pytest.mark.node

#: `systemd-analyze security`: 0 is fully locked down, 10 fully exposed; ≤ 2.0 is rated "OK".
EXPOSURE_LIMIT = 2.0


def test_systemd_rates_the_service_ok_and_every_unit_verifies(
    project: Project, node: NodeHandle, record_property: Callable[[str, object], None]
) -> None:
    setup_env(project, node, "live")
    assert deploy(project, node, "live", "0.1.0").code == 0
    rating = node.ssh("systemd-analyze security --no-pager helionyx-live.service")
    found = re.search(r"Overall exposure level for helionyx-live\.service: ([\d.]+) (\w+)", rating)
    assert found, rating[-500:]
    score = float(found.group(1))
    record_property("systemd_analyze_security_exposure", score)
    print(f"systemd-analyze security helionyx-live.service: {score} {found.group(2)}")
    assert score <= EXPOSURE_LIMIT, rating

    units = "/etc/systemd/system/helionyx-live.service /etc/systemd/system/helionyx-live.socket"
    verified = node.ssh(f"systemd-analyze verify {units} 2>&1; echo exit=$?")
    assert verified.strip().splitlines() == ["exit=0"], verified

    # What the sandbox means for the running process, seen from outside.
    pid = node.ssh("systemctl show -p MainPID --value helionyx-live").strip()
    status = node.ssh(f"cat /proc/{pid}/status")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == fields["CapBnd"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2", "a system call filter is in force"
    assert node.ssh(f"stat -c %U /proc/{pid}").strip() == "helionyx"
    # The file system as the process sees it: read-only but for its data dir.
    mounts = {}
    for line in node.ssh(f"cat /proc/{pid}/mountinfo").splitlines():
        parts = line.split()
        mounts[parts[4]] = parts[5].split(",")
    assert "ro" in mounts["/"], "ProtectSystem=strict: the release and the OS are read-only"
    assert "rw" in mounts["/var/lib/helionyx/live"], "the data dir stays writable"
    assert "/opt/helionyx/live" not in mounts or "ro" in mounts["/opt/helionyx/live"]

#!/usr/bin/env python3
"""A real `node1` on this machine: Debian 12 (or 13) with systemd as PID 1 and OpenSSH, booted
with systemd-nspawn in its own network namespace, reached over SSH with a pinned host key.

    python3 deployment/testnode/testnode.py up|down|reboot|env|status|ssh|rootfs
        [--name node1] [--index 0] [--suite bookworm|trixie]

`reboot` shuts the node down and boots it on the same disk, as a host reboot would; `reboot
--suite trixie` boots that disk over Debian 13 instead, as a distribution upgrade would. `up` is
idempotent and boots a clean node (a fresh overlay over a pristine Debian root
filesystem, built once with debootstrap and cached under $HELIONYX_TESTNODE_DIR). The node has
no route beyond the host end of its veth pair, so it can install only what is copied to it.
Needs root; uses only the standard library so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Under /var/tmp so the ~300 MB root filesystem survives reboots and is reused.
STATE = Path(os.environ.get("HELIONYX_TESTNODE_DIR", "/var/tmp/helionyx-testnode"))  # noqa: S108
#: The Debian releases a node can run (`--suite`), and the one it runs unless told.
SUITES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
SUITE = "bookworm"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "iproute2",
    "curl",
]
HOST_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    # The node's keys, and the client the deploy tool and this script reach the node with.
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
}
NOISE_UNITS = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@tty1.service",
    "console-getty.service",
    "systemd-pstore.service",
]
BOOT_TIMEOUT = 60.0


class NodeError(Exception):
    """Something the operator must fix; printed as one line."""


def say(message: str) -> None:
    """Progress goes to stderr so `env` output stays clean."""
    print(f"testnode: {message}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a host command."""
    result = subprocess.run(args, capture_output=quiet, text=True, check=False)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        raise NodeError(
            f"{' '.join(args[:3])} failed: {detail[-1] if detail else result.returncode}"
        )
    return result


@dataclass(frozen=True)
class Node:
    """One test node and where its pieces live."""

    name: str = "node1"
    index: int = 0

    @property
    def dir(self) -> Path:
        return STATE / "nodes" / self.name

    @property
    def host_ip(self) -> str:
        return f"10.231.{self.index}.1"

    @property
    def ip(self) -> str:
        return f"10.231.{self.index}.2"

    @property
    def veth(self) -> str:
        return f"v{self.name}"[:15]

    @property
    def merged(self) -> Path:
        return self.dir / "merged"

    @property
    def key(self) -> Path:
        return STATE / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def pid_file(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def suite_file(self) -> Path:
        return self.dir / "suite"

    def suite(self) -> str:
        """The Debian release the node last booted."""
        try:
            return self.suite_file.read_text().strip() or SUITE
        except FileNotFoundError:
            return SUITE

    def env_lines(self) -> list[str]:
        # `export`: `eval "$(make -s testnode-env)"` must reach the make and python it starts.
        return [
            f"export DEPLOY_HOST={self.ip}",
            f"export DEPLOY_SSH_KEY={self.key}",
            f"export DEPLOY_KNOWN_HOSTS={self.known_hosts}",
        ]


# -- the pristine root filesystem --------------------------------------------------------
def ensure_host_tools() -> None:
    """systemd-nspawn, debootstrap and the OpenSSH client, installed with apt when missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise NodeError(
            f"missing {', '.join(missing)}; install them: apt-get install -y {' '.join(missing)}"
        )
    say(f"installing {', '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def debian_mirror() -> str:
    """The Debian mirror apt on this machine already uses (deb.debian.org elsewhere)."""
    if os.environ.get("HELIONYX_DEBIAN_MIRROR"):
        return os.environ["HELIONYX_DEBIAN_MIRROR"]
    lines: list[str] = []
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        lines += [
            line.split()[1]
            for line in source.read_text().splitlines()
            if line.startswith("URIs:") and len(line.split()) > 1
        ]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        lines += [
            parts[1]
            for parts in (line.split() for line in legacy.read_text().splitlines())
            if len(parts) >= 3 and parts[0] == "deb"
        ]
    # Only a Debian mirror carries bookworm (an Ubuntu runner's mirror does not).
    for uri in lines:
        if "debian" in uri and "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def base_rootfs(suite: str = SUITE) -> Path:
    """The pristine rootfs of a Debian release, built once (into a .partial directory, renamed
    when complete)."""
    if suite not in SUITES:
        raise NodeError(f"unknown suite {suite!r}; the node runs {', '.join(SUITES)}")
    # bookworm's keeps the place it always had, so a cached one is reused.
    base = STATE / "base" / ("rootfs" if suite == SUITE else f"rootfs-{suite}")
    if (base / "etc" / "os-release").exists():
        return base
    partial = base.with_name("rootfs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"building the {SUITES[suite]} root filesystem from {mirror} (about 80 s, once)")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            suite,
            str(partial),
            mirror,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    last = 0.0
    tail: list[str] = []
    for line in process.stdout:
        tail = [*tail[-20:], line.rstrip()]
        now = time.monotonic()
        if now - last > 3 and line.startswith("I: "):
            say(f"  {now - started:5.0f} s  {line[3:].strip()[:70]}")
            last = now
    if process.wait() != 0:
        raise NodeError("debootstrap failed: " + " | ".join(tail[-3:]))
    _configure_base(partial)
    partial.rename(base)
    say(f"root filesystem ready in {time.monotonic() - started:.0f} s")
    return base


def _configure_base(root: Path) -> None:
    dropin = root / "etc/ssh/sshd_config.d/helionyx-testnode.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")
    for unit in NOISE_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Host keys are made per boot in the overlay; the base keeps none.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()


# -- cgroups, network, overlay -----------------------------------------------------------
def _cgroup_dirs(node: Node) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():  # pure cgroup2
        return [root / f"machine-{node.name}"]
    return [root / "systemd" / f"machine-{node.name}", root / "unified" / f"machine-{node.name}"]


def _remove_cgroup(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def _network_up(node: Node) -> None:
    if run("ip", "netns", "list", check=False).stdout.split().count(node.name) == 0:
        run("ip", "netns", "add", node.name)
    if run("ip", "link", "show", node.veth, check=False).returncode != 0:
        run(
            "ip",
            "link",
            "add",
            node.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node.name,
        )
        run("ip", "addr", "add", f"{node.host_ip}/24", "dev", node.veth)
        run("ip", "link", "set", node.veth, "up")
        run("ip", "-n", node.name, "addr", "add", f"{node.ip}/24", "dev", "eth0")
        run("ip", "-n", node.name, "link", "set", "eth0", "up")
        run("ip", "-n", node.name, "link", "set", "lo", "up")


def _network_down(node: Node) -> None:
    run("ip", "link", "del", node.veth, check=False)
    run("ip", "netns", "del", node.name, check=False)


def _mount_overlay(node: Node, base: Path, *, fresh: bool) -> None:
    for part in ("upper", "work"):
        if fresh:
            shutil.rmtree(node.dir / part, ignore_errors=True)
        (node.dir / part).mkdir(parents=True, exist_ok=True)
    node.merged.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={base},upperdir={node.dir / 'upper'},workdir={node.dir / 'work'}"
    run("mount", "-t", "overlay", "overlay", "-o", options, str(node.merged))


def _unmount(node: Node) -> None:
    if os.path.ismount(node.merged):
        run("umount", str(node.merged), check=False)
        if os.path.ismount(node.merged):
            run("umount", "-l", str(node.merged), check=False)


def _keygen(path: Path, comment: str) -> None:
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def _client_key(node: Node) -> None:
    if not node.key.exists():
        node.key.parent.mkdir(parents=True, exist_ok=True)
        _keygen(node.key, "helionyx-testnode")
    node.key.chmod(0o600)


def _personalise(node: Node) -> None:
    root = node.merged
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(node.key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    (root / "etc/hostname").write_text(f"{node.name}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{node.ip} {node.name}\n")
    machine_id = run("systemd-id128", "new").stdout.strip()
    (root / "etc/machine-id").write_text(machine_id + "\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    _keygen(host_key, f"root@{node.name}")
    public = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    node.known_hosts.write_text(f"{node.ip} {public}\n")


# -- lifecycle ---------------------------------------------------------------------------
def nspawn_pid(node: Node) -> int | None:
    """The running nspawn's PID, or None (a zombie counts as gone)."""
    try:
        pid = int(node.pid_file.read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if state != "Z" and comm.startswith("systemd-nspawn") else None


def ssh_command(node: Node, *command: str, timeout: int = 5) -> list[str]:
    """The ssh argv that runs `command` on the node as root."""
    return [
        "ssh",
        "-i",
        str(node.key),
        "-o",
        f"UserKnownHostsFile={node.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={timeout}",
        "-o",
        "LogLevel=ERROR",
        f"root@{node.ip}",
        *command,
    ]


def _wait_booted(node: Node, pid: int) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if nspawn_pid(node) != pid:
            console = (node.dir / "console.log").read_text(errors="replace").strip().splitlines()
            raise NodeError("the container stopped while booting: " + " | ".join(console[-3:]))
        result = subprocess.run(
            ssh_command(node, "systemctl", "is-system-running", "--wait", timeout=2),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.1)
    raise NodeError(f"{node.name} did not finish booting within {BOOT_TIMEOUT:.0f} s")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def up(node: Node, suite: str = SUITE) -> None:
    """Boot the node (with Debian `suite`) unless it is already up."""
    if os.geteuid() != 0:
        raise NodeError("the test node needs root (systemd-nspawn, network namespaces, mounts)")
    with _locked():
        if nspawn_pid(node) is not None:
            if node.suite() != suite:
                raise NodeError(f"{node.name} is up with {node.suite()}; take it down first")
            say(f"{node.name} is already up at {node.ip}")
            return
        ensure_host_tools()
        started = time.monotonic()
        _teardown(node)
        _boot(node, suite, fresh=True)
        say(f"{node.name} up at {node.ip} in {time.monotonic() - started:.1f} s")


def reboot(node: Node, suite: str | None = None) -> None:
    """Shut the node down and boot it again on the same disk (its overlay is kept); with
    another `suite`, the same disk over that Debian release: a distribution upgrade (a new
    python3 among the rest) under everything the node holds."""
    with _locked():
        if nspawn_pid(node) is None:
            raise NodeError(f"{node.name} is not up")
        started = time.monotonic()
        _teardown(node)
        _boot(node, suite or node.suite(), fresh=False)
        say(f"{node.name} rebooted at {node.ip} in {time.monotonic() - started:.1f} s")


def _boot(node: Node, suite: str, *, fresh: bool) -> None:
    base = base_rootfs(suite)
    node.dir.mkdir(parents=True, exist_ok=True)
    node.suite_file.write_text(suite + "\n")
    _client_key(node)
    _mount_overlay(node, base, fresh=fresh)
    if fresh:
        _personalise(node)
    _network_up(node)
    cgroups = _cgroup_dirs(node)
    for cgroup in cgroups:
        cgroup.mkdir(exist_ok=True)

    def enter_cgroup() -> None:
        for cgroup in cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    console = (node.dir / "console.log").open("wb")
    process = subprocess.Popen(
        [
            "systemd-nspawn",
            "-D",
            str(node.merged),
            f"--machine={node.name}",
            "--boot",
            "--register=no",
            "--keep-unit",
            f"--network-namespace-path=/run/netns/{node.name}",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--console=read-only",
        ],
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=enter_cgroup,  # noqa: PLW1509 - must run between fork and exec
    )
    node.pid_file.write_text(str(process.pid))
    state = _wait_booted(node, process.pid)
    say(f"{node.name}: systemd is {state}")


def _teardown(node: Node) -> None:
    pid = nspawn_pid(node)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while nspawn_pid(node) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if nspawn_pid(node) is not None:
            os.kill(pid, signal.SIGKILL)
            while nspawn_pid(node) is not None and time.monotonic() < deadline + 10:
                time.sleep(0.05)
    for cgroup in _cgroup_dirs(node):
        _remove_cgroup(cgroup)
    _unmount(node)
    _network_down(node)
    node.pid_file.unlink(missing_ok=True)


def down(node: Node) -> None:
    """Shut the node down and remove everything it used (the base rootfs stays cached)."""
    with _locked():
        was_up = nspawn_pid(node) is not None
        _teardown(node)
        shutil.rmtree(node.dir / "upper", ignore_errors=True)
        shutil.rmtree(node.dir / "work", ignore_errors=True)
        say(f"{node.name} {'stopped' if was_up else 'was not running'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "command", choices=("up", "down", "reboot", "env", "status", "ssh", "rootfs")
    )
    parser.add_argument("--name", default="node1")
    parser.add_argument("--index", type=int, default=0, help="subnet 10.231.<index>.0/24")
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        help=f"the Debian release (up, rootfs: {SUITE} unless given; reboot: an upgrade to it)",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    node = Node(args.name, args.index)
    try:
        if args.command == "up":
            up(node, args.suite or SUITE)
        elif args.command == "down":
            down(node)
        elif args.command == "reboot":
            reboot(node, args.suite)
        elif args.command == "rootfs":
            ensure_host_tools()
            base_rootfs(args.suite or SUITE)
        elif args.command == "env":
            print("\n".join(node.env_lines()))
        elif args.command == "status":
            pid = nspawn_pid(node)
            where = f" at {node.ip} (nspawn pid {pid})" if pid else ""
            print(f"{node.name}: {'up' if pid else 'down'}{where}")
            return 0 if pid else 1
        elif args.command == "ssh":
            os.execvp("ssh", ssh_command(node, *args.rest))  # noqa: S606
    except NodeError as exc:
        print(f"testnode: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

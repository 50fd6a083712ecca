"""Mutation testing of the modules that hold the operator's rules (`make mutation`).

Copies the working tree (the files git knows) to `var/mutation/tree`, gives mutmut its settings
there, runs `mutmut run` on the tests that need no root, and prints, per module, how many of the
mutants the tests killed. How to read it: docs/TESTING.md. Exits 1 when a module is under the
target.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "var" / "mutation"
TARGET = 0.90

#: The rule each module holds, by its source file.
MODULES = {
    "release/agent/prune.py": "retention",
    "release/agent/lock.py": "the deploy lock (host side)",
    "release/hosts/lock.py": "the deploy lock (operator side: queue, stale holders)",
    "release/agent/checksums.py": "checksums",
    "release/artifacts/version.py": "version parsing",
    "release/artifacts/store.py": "version resolution",
    "release/agent/deploylog.py": "the deploy-log reader",
    "release/agent/contract.py": "the data contract",
    "src/helionyx/domain/idempotency.py": "idempotency",
}
#: The tests that exercise them and need no root, node or network.
TESTS = [
    "tests/release/agent",
    "tests/release/artifacts",
    "tests/release/hosts",
    "tests/helionyx/api/test_idempotency.py",
    "tests/helionyx/domain",
]
#: Left out, because mutmut's copy cannot pass them: the agent bundle must run under
#: `python3 -I -S` (a mutated module imports mutmut), and the module-size checks would count
#: mutmut's generated variants.
DESELECTED = "not stays_small and not standard_library_alone"

KILLED = ("killed", "timeout")
_NAME = re.compile(r"^\s*(\S+?)\.x[_ǁ].*?__mutmut_\d+: (.+)$")


def settings() -> str:
    """mutmut's [tool.mutmut] table for the copy."""
    top = sorted({path.split("/", 1)[0] for path in tracked()} - {"tests", "pyproject.toml"})
    fast = "not (process or build or root or node)"
    args = ["-p", "no:cacheprovider", "-q", "-m", fast, "-k", DESELECTED]
    return (
        "\n[tool.mutmut]\n"
        f"source_paths = {list(MODULES)!r}\n"
        f"also_copy = {top!r}\n"
        f"pytest_add_cli_args_test_selection = {TESTS!r}\n"
        f"pytest_add_cli_args = {args!r}\n"
        # A mutant that loops for ever (a read of 0 bytes at a time) is given up after 5 times
        # its tests' usual time, not mutmut's 15: it counts as killed either way.
        "timeout_multiplier = 5.0\n"
    ).replace("'", '"')


def tracked() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listing.stdout.splitlines() if (REPO / line).is_file()]


def copy_tree(tree: Path) -> None:
    """The working tree as git sees it (committed or not), with mutmut's settings."""
    shutil.rmtree(tree, ignore_errors=True)
    for path in tracked():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, target)
    with (tree / "pyproject.toml").open("a") as pyproject:
        pyproject.write(settings())


def module_of(source: str) -> str:
    dotted = source.removesuffix(".py").replace("/", ".")
    return dotted.removeprefix("src.")


def results(mutmut: Path, tree: Path) -> dict[str, dict[str, str]]:
    """{module: {mutant: status}} from `mutmut results --all true`."""
    shown = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for line in shown.stdout.splitlines():
        if match := _NAME.match(line):
            found[match[1]][match[0].strip().rsplit(":", 1)[0]] = match[2].strip()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", type=Path, default=REPO / ".venv-mutation" / "bin" / "mutmut")
    args = parser.parse_args()
    tree = WORK / "tree"
    copy_tree(tree)
    started = time.monotonic()
    with (WORK / "run.log").open("w") as log:
        done = subprocess.run(
            [str(args.mutmut), "run"], cwd=tree, stdout=log, stderr=log, check=False
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print(f"mutmut run failed ({done.returncode}): see {WORK / 'run.log'}", file=sys.stderr)
        return 2
    found = results(args.mutmut, tree)
    short, left = 0, []
    print(f"{'module':<38} {'killed':>7} {'of':>5} {'score':>7}  rule")
    for source, rule in MODULES.items():
        mutants = found.get(module_of(source), {})
        count = Counter(mutants.values())
        left += [name for name, status in mutants.items() if status not in KILLED]
        total, killed = sum(count.values()), sum(count[s] for s in KILLED)
        score = killed / total if total else 1.0
        short += score < TARGET
        mark = "" if score >= TARGET else f"  (under {TARGET:.0%})"
        print(f"{module_of(source):<38} {killed:>7} {total:>5} {score:>7.1%}  {rule}{mark}")
    (WORK / "survivors.txt").write_text("".join(f"{name}\n" for name in left))
    print(f"{len(left)} survivors in {WORK / 'survivors.txt'} (see one: make mutation-show M=NAME)")
    print(f"took {seconds / 60:.1f} min on {len(found)} modules")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())

"""The few git operations the pipeline needs, behind one small class."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from release.errors import GitError


@dataclass(frozen=True)
class Git:
    """A git work tree, driven through the `git` command."""

    root: Path

    def run(self, *args: str, input_bytes: bytes | None = None) -> str:
        """Run git and return stdout, or raise GitError with git's own message."""
        try:
            result = subprocess.run(
                ["git", *args],
                cwd=self.root,
                input=input_bytes,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            raise GitError("git is not installed", hint="install git") from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {message[-1] if message else 'no output'}")
        return result.stdout.decode().strip()

    def rev(self, ref: str) -> str:
        """The full commit SHA a ref points at."""
        return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def head(self) -> str:
        """The commit SHA of HEAD."""
        return self.rev("HEAD")

    def is_clean(self) -> bool:
        """Whether the work tree and index have no changes (untracked files count)."""
        return self.run("status", "--porcelain") == ""

    def tags(self) -> list[str]:
        """Every tag name."""
        out = self.run("tag", "--list")
        return [line for line in out.splitlines() if line]

    def tags_at(self, commit: str) -> list[str]:
        """Tags pointing at a commit."""
        out = self.run("tag", "--points-at", commit)
        return [line for line in out.splitlines() if line]

    def tag_commit(self, tag: str) -> str | None:
        """The commit a tag names, or None when there is no such tag."""
        try:
            return self.rev(f"refs/tags/{tag}")
        except GitError:
            return None

    def commit_time(self, commit: str) -> int:
        """Committer time of a commit, as a Unix timestamp."""
        return int(self.run("show", "-s", "--format=%ct", commit))

    def count_since(self, base: str, commit: str) -> int:
        """How many commits lead from `base` to `commit`."""
        return int(self.run("rev-list", "--count", f"{base}..{commit}"))

    def export(self, commit: str, destination: Path) -> None:
        """Write the tree of `commit` (tracked files only) into `destination`."""
        destination.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise GitError(f"git archive {commit[:12]} failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)

    def commit_all(self, message: str, *paths: str) -> str:
        """Commit the given paths and return the new commit SHA."""
        self.run("add", "--", *paths)
        self.run("commit", "--quiet", "-m", message, "--", *paths)
        return self.head()

    def annotated_tag(self, tag: str, commit: str, message: str) -> None:
        """Create an annotated tag."""
        self.run("tag", "--annotate", tag, commit, "-m", message)

    def is_ancestor(self, commit: str, of: str) -> bool:
        """Whether `commit` is reachable from `of` (e.g. a tag's commit from origin/main)."""
        result = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, of],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if result.returncode > 1:
            raise GitError(f"git merge-base failed: {result.stderr.decode().strip()}")
        return result.returncode == 0

    def branch(self) -> str:
        """The current branch name (or HEAD when detached)."""
        return self.run("rev-parse", "--abbrev-ref", "HEAD")


def snapshot_work_tree(source: Path, target: Path, message: str) -> Git:
    """A new repository at `target` holding `source`'s work tree (tracked files and untracked
    ones git does not ignore) as one commit: a scratch clone that includes uncommitted work."""
    listed = Git(source).run("ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)
    repo = Git(target)
    repo.run("init", "--quiet", "--initial-branch=main")
    repo.run("config", "user.email", "scratch@helionyx.invalid")
    repo.run("config", "user.name", "Helionyx")
    repo.run("add", "--all")
    repo.run("commit", "--quiet", "-m", message)
    return repo

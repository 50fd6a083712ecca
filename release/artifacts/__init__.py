"""Building, verifying and storing release artifacts: version, changelog, git, build, stores."""

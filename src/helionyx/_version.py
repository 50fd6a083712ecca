"""Version and commit of this build; rewritten in the build tree by the release tool."""

__version__ = "0.0.0+unreleased"
__commit__ = "unknown"

"""Helionyx: an event-sourced assistant service."""

from helionyx._version import __commit__, __version__

__all__ = ["__commit__", "__version__"]

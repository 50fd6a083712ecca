"""The FastAPI adapter: HTTP in, domain calls, HTTP out."""

from helionyx.api.app import create_app

__all__ = ["create_app"]

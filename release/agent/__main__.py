"""`python -m release.agent`: serve requests on stdin (how the host runs the bundle, too)."""

from __future__ import annotations

import sys

from .serve import serve

sys.exit(serve())

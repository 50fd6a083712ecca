"""`python -m helionyx`."""

import sys

from helionyx import successor

if successor.beside():
    # Booting beside the release still serving: its clients get the CPU first.
    successor.preload()

# After the preload, which did the real import.
from helionyx.cli import main

sys.exit(main())

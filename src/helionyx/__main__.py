"""`python -m helionyx`."""

import sys

from helionyx.cli import main

sys.exit(main())

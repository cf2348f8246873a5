"""`python -m nexus.compare ...`: the nexus-compare command."""

import sys

from nexus.compare.cli import main

sys.exit(main())

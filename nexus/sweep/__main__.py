"""`python -m nexus.sweep ...`: the nexus-sweep command."""

import sys

from nexus.sweep.cli import main

sys.exit(main())

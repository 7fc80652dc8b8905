"""`python -m alops` runs the CLI."""

import sys

from alops.cli import main

sys.exit(main())

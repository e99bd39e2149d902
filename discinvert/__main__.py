"""``python -m discinvert``: the command line."""

import sys

from discinvert.cli import main

sys.exit(main())

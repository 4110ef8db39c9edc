"""``python -m spikeforge``: the command line."""

import sys

from spikeforge.cli import main

sys.exit(main())

"""``python -m spikeforge.dse STUDY.yaml --out DIR``: the ``spikeforge dse`` command.

It goes through :func:`spikeforge.cli.main`, so errors, signals (SIGTERM and
SIGHUP act like Ctrl-C, exit status 128 + N) and exit statuses are the same.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

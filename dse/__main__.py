"""``python -m spikeforge.dse STUDY.yaml --out DIR``: the ``spikeforge dse`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

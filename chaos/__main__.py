"""``python -m chaos``: the ``chaos`` command (see :mod:`chaos.cli`)."""

import sys

from chaos.cli import main

if __name__ == "__main__":
    sys.exit(main())

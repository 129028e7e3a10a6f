"""``python -m aljax ...``: the same as the ``aljax`` console script."""

import sys

from aljax.cli import main

sys.exit(main())

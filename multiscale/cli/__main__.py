"""``python -m multiscale.cli``: the same as the ``multiscale`` console script."""

import sys

from multiscale.cli import main

sys.exit(main())

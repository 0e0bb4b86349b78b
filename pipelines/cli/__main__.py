"""``python -m pipelines.cli``: the ``certiverse`` command without its console script."""

import sys

from . import main

sys.exit(main())

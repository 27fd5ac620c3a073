"""``python -m evstream.bench`` is ``python -m evstream bench``."""

import sys

from .cli import main

sys.exit(main())

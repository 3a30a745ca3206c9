"""``python -m pocketear.cli``: the same as the ``pocketear`` command."""

import sys

from pocketear.cli import main

sys.exit(main())

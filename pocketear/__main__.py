"""``python -m pocketear`` (and ``torchrun ... -m pocketear pretrain ...``): the CLI."""

import sys

from pocketear.cli import main

sys.exit(main())

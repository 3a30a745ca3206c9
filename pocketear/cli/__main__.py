import sys

from pocketear.cli import main

sys.exit(main())

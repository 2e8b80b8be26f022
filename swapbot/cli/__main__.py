import sys

from swapbot.cli import main

sys.exit(main())

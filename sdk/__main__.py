"""`python -m pixelrun`: the `pixelrun` command line (engine/cli/main.py), the same as
the installed `pixelrun` script."""

import sys

from pixelrun.engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m pixelrun.engine.cli`: the `pixelrun` command."""

import sys

from pixelrun.engine.cli.main import main

sys.exit(main())

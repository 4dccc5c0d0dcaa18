"""``python -m agent``: the same commands as ``connect-agent``."""

import sys

from agent.cli import main

sys.exit(main())

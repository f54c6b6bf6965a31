"""``python -m loram_core.cli``: what launchers need, e.g. ``accelerate launch -m loram_core.cli train RUN_DIR``."""

import sys

from loram_core.cli.main import main

sys.exit(main())

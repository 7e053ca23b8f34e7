"""``python -m mbrl.report``: the same program as ``mbrl-report``."""

import sys

from mbrl.report.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Aggregate run folders into a results table and learning curves; the same program as ``mbrl-report``."""

import sys

from mbrl.report import main

if __name__ == "__main__":
    sys.exit(main())

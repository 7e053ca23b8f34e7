"""Create Minari datasets locally; the same program as the ``mbrl-make-dataset`` console script."""

import sys

from mbrl.data.make_dataset import main

if __name__ == "__main__":
    sys.exit(main())

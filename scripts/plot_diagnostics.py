"""Draw a run folder's reach-aware diagnostics as one PNG; the same program as ``mbrl-plot-diagnostics``."""

import sys

from mbrl.plot_diagnostics import main

if __name__ == "__main__":
    sys.exit(main())

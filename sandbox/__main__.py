"""``python -m sandbox``: the same entry point as ``postdicom-flows sandbox``."""

import sys

from sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())

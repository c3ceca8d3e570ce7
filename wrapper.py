"""DeepZine: python wrapper.py config.yaml [--dry-run] [--set key=value] | params [WORD]. See README.md."""

import sys

from deepzine.cli import main

if __name__ == '__main__':
    sys.exit(main())

"""`python -m deepzine ...` is the `deepzine` command."""

import sys

from deepzine.cli import main

sys.exit(main())

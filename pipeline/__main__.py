"""``python -m pipeline ...``: the ``petition`` command."""
import sys

from pipeline.cli import main

sys.exit(main())

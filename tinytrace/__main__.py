"""``python -m tinytrace`` is the same as the ``tinytrace`` command."""
import sys

from tinytrace.cli import main

sys.exit(main())

"""``python -m waitroom``: the same as the ``waitroom`` command."""

import sys

from waitroom.cli import main

sys.exit(main())
